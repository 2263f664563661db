//! A minimal memcached client (text protocol, one TCP connection, blocking): just what the
//! benchmark needs, `get`, `set`, a pipelined bulk load and `stats`.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;

/// One connection to a memcached.
pub struct Memcache {
    r: BufReader<TcpStream>,
    w: TcpStream,
    req: Vec<u8>,
    line: Vec<u8>,
}

fn bad(what: &str, line: &[u8]) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("memcached: {what}: {:?}", String::from_utf8_lossy(line)),
    )
}

impl Memcache {
    /// Connects to `addr` (`127.0.0.1:11211`), with TCP_NODELAY.
    pub fn connect(addr: &str) -> io::Result<Memcache> {
        let w = TcpStream::connect(addr)?;
        w.set_nodelay(true)?;
        Ok(Memcache {
            r: BufReader::with_capacity(256 << 10, w.try_clone()?),
            w,
            req: Vec::with_capacity(512),
            line: Vec::with_capacity(128),
        })
    }

    fn read_line(&mut self) -> io::Result<()> {
        self.line.clear();
        self.r.read_until(b'\n', &mut self.line)?;
        if !self.line.ends_with(b"\r\n") {
            return Err(bad("truncated reply", &self.line));
        }
        Ok(())
    }

    /// `get key`: the value into `out` (replaced); false on a miss. One write, one reply.
    pub fn get_into(&mut self, key: &[u8], out: &mut Vec<u8>) -> io::Result<bool> {
        self.req.clear();
        self.req.extend_from_slice(b"get ");
        self.req.extend_from_slice(key);
        self.req.extend_from_slice(b"\r\n");
        self.w.write_all(&self.req)?;
        self.read_line()?;
        if self.line == b"END\r\n" {
            out.clear();
            return Ok(false);
        }
        // VALUE <key> <flags> <bytes>\r\n<data>\r\nEND\r\n
        if !self.line.starts_with(b"VALUE ") {
            return Err(bad("unexpected reply to get", &self.line));
        }
        let len: usize = std::str::from_utf8(&self.line[..self.line.len() - 2])
            .ok()
            .and_then(|s| s.rsplit(' ').next()?.parse().ok())
            .ok_or_else(|| bad("bad VALUE line", &self.line))?;
        out.resize(len + 2, 0);
        self.r.read_exact(out)?;
        out.truncate(len);
        self.read_line()?;
        if self.line != b"END\r\n" {
            return Err(bad("no END after the value", &self.line));
        }
        Ok(true)
    }

    fn push_set(&mut self, key: &[u8], value: &[u8], noreply: bool) {
        self.req.extend_from_slice(b"set ");
        self.req.extend_from_slice(key);
        self.req
            .extend_from_slice(format!(" 0 0 {}", value.len()).as_bytes());
        if noreply {
            self.req.extend_from_slice(b" noreply");
        }
        self.req.extend_from_slice(b"\r\n");
        self.req.extend_from_slice(value);
        self.req.extend_from_slice(b"\r\n");
    }

    /// `set key 0 0 len`, acknowledged.
    pub fn set(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        self.req.clear();
        self.push_set(key, value, false);
        self.w.write_all(&self.req)?;
        self.read_line()?;
        if self.line != b"STORED\r\n" {
            return Err(bad("set not stored", &self.line));
        }
        Ok(())
    }

    /// Sets every pair pipelined (`noreply`, in chunks), then waits for a round trip.
    pub fn set_many<'a>(
        &mut self,
        pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    ) -> io::Result<()> {
        self.req.clear();
        for (k, v) in pairs {
            self.push_set(k, v, true);
            if self.req.len() > 64 << 10 {
                self.w.write_all(&self.req)?;
                self.req.clear();
            }
        }
        self.w.write_all(&self.req)?;
        self.req.clear();
        self.stats().map(|_| ())
    }

    /// `stats` (or `stats slabs` and the like with `arg`): name, value pairs.
    pub fn stats_of(&mut self, arg: &str) -> io::Result<Vec<(String, String)>> {
        let cmd = if arg.is_empty() {
            "stats\r\n".to_string()
        } else {
            format!("stats {arg}\r\n")
        };
        self.w.write_all(cmd.as_bytes())?;
        let mut out = Vec::new();
        loop {
            self.read_line()?;
            if self.line == b"END\r\n" {
                return Ok(out);
            }
            let s = String::from_utf8_lossy(&self.line[..self.line.len() - 2]).into_owned();
            let mut it = s.splitn(3, ' ');
            match (it.next(), it.next(), it.next()) {
                (Some("STAT"), Some(k), Some(v)) => out.push((k.to_string(), v.to_string())),
                _ => return Err(bad("unexpected stats line", &self.line)),
            }
        }
    }

    /// `stats`.
    pub fn stats(&mut self) -> io::Result<Vec<(String, String)>> {
        self.stats_of("")
    }

    /// `flush_all`.
    pub fn flush_all(&mut self) -> io::Result<()> {
        self.w.write_all(b"flush_all\r\n")?;
        self.read_line()?;
        if self.line != b"OK\r\n" {
            return Err(bad("flush_all", &self.line));
        }
        Ok(())
    }
}
