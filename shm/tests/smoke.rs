use cachekit_shm::*;

#[test]
fn smoke_both_backings() {
    for b in [Backing::Heap, Backing::Memfd] {
        let cfg = TableConfig { arena_bytes: 1 << 20, segment_bytes: Some(64 << 10), max_value_bytes: 16 << 10, tag_counters: 1 << 10, ..Default::default() };
        let mut w = Writer::create(&cfg, b).unwrap();
        let r = match b { Backing::Heap => w.reader(), Backing::Memfd => { let f = w.fds().unwrap(); Reader::attach(f.table_fd(), Some(f.client_fd())).unwrap() } };
        w.insert("ns", b"k", b"hello", &InsertOptions { tags: &["posts/1"], ..Default::default() }).unwrap();
        assert_eq!(r.get("ns", b"k").unwrap().0, b"hello");
        assert!(r.get("other", b"k").is_none());
        w.invalidate("ns", "posts", InvalidateMode::Hierarchical).unwrap();
        assert!(r.get("ns", b"k").is_none());
        for i in 0..20000u32 { w.insert("ns", &i.to_le_bytes(), &[i as u8; 100], &InsertOptions::default()).unwrap(); }
        let mut hits = 0; for i in 0..20000u32 { if let Some((v, _)) = r.get("ns", &i.to_le_bytes()) { assert_eq!(v, vec![i as u8; 100]); hits += 1; } }
        println!("{b:?} hits {hits} stats {:?} {:?}", w.stats(), r.stats());
        assert!(hits > 1000);
    }
}
