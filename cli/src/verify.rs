//! `cachekit verify [--repair]`: walks this host's table page by page (VERIFY), checking every
//! index slot and entry as a warm restart's carry does, and reports what failed by reason with
//! a sample of the damaged keys; `--repair` (writers only) drops the damaged entries.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use cachekit_client::Client;
use serde_json::json;

use crate::output::{key_text, Outcome};
use crate::CliError;

/// Damaged entries named in the output, at most.
const SAMPLE: usize = 20;

pub fn verify(client: &Client, repair: bool) -> Result<Outcome, CliError> {
    let (mut cursor, mut examined, mut repaired) = (0, 0, 0);
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut sample = Vec::new();
    loop {
        let page = client.verify_page(cursor, repair)?;
        examined += page.examined;
        repaired += page.repaired;
        for (name, n) in page.counts {
            *counts.entry(name).or_default() += n;
        }
        for b in page.sample {
            if sample.len() < SAMPLE {
                sample.push(b);
            }
        }
        cursor = page.next;
        if cursor == 0 {
            break;
        }
    }
    let normal = ["expired", "invalidated"];
    let damaged: u64 = counts
        .iter()
        .filter(|(k, _)| !normal.contains(&k.as_str()))
        .map(|(_, n)| n)
        .sum();
    let mut text = format!("{examined} entries checked, {damaged} damaged");
    if repair {
        let _ = write!(text, ", {repaired} dropped");
    }
    for (name, n) in counts.iter().filter(|(_, n)| **n > 0) {
        let _ = write!(text, "\n  {name}: {n}");
    }
    for b in &sample {
        let _ = write!(
            text,
            "\n  slot {}: {} {}/{}",
            b.slot,
            b.reason,
            b.namespace,
            key_text(&b.key)
        );
    }
    let report = json!({
        "examined": examined,
        "damaged": damaged,
        "repaired": repaired,
        "counts": counts,
        "sample": sample.iter().map(|b| json!({
            "slot": b.slot, "reason": b.reason, "namespace": b.namespace, "key": key_text(&b.key),
        })).collect::<Vec<_>>(),
    });
    Ok(if damaged > repaired {
        Outcome::not_done(
            report,
            format!(
                "{text}\nrun `cachekit verify --repair` (a writer) to drop the damaged entries"
            ),
        )
    } else {
        Outcome::done(report, text)
    })
}
