//! The CRI log format kubelet reads (`<RFC3339Nano> stdout|stderr F|P <line>`),
//! written with size-based rotation by the monitor, and parsed back by the
//! reader.
//!
//! A line longer than [`MAX_LINE`] bytes is split into `P` (partial) records
//! followed by a final `F` record. Rotation renames `N.log` to
//! `N.log.<YYYYMMDD-HHMMSS.nanos>` and keeps at most `max_files` files, the
//! current one included.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use jiff::Timestamp;

/// Errors writing a log file.
#[derive(Debug, thiserror::Error)]
pub enum LogFormatError {
    /// I/O on the log file.
    #[error("log file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Longest content of one record; longer lines are split with `P` tags.
pub const MAX_LINE: usize = 16 * 1024;

/// Which output stream a record came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Standard output (and a terminal's output).
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One parsed record.
#[derive(Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// When it was written.
    pub timestamp: Timestamp,
    /// The stream.
    pub stream: Stream,
    /// `P`: the line continues in the next record.
    pub partial: bool,
    /// The content without the trailing newline.
    pub content: &'a [u8],
}

/// Parses one record (without its trailing `\n`).
pub fn parse(line: &[u8]) -> Option<Record<'_>> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let ts = std::str::from_utf8(parts.next()?)
        .ok()?
        .parse::<Timestamp>()
        .ok()?;
    let stream = match parts.next()? {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    let partial = match parts.next()? {
        b"P" => true,
        b"F" => false,
        _ => return None,
    };
    Some(Record {
        timestamp: ts,
        stream,
        partial,
        content: parts.next().unwrap_or(b""),
    })
}

/// Formats one record, newline included.
pub fn format(ts: Timestamp, stream: Stream, partial: bool, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 48);
    out.extend_from_slice(ts.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.as_str().as_bytes());
    out.extend_from_slice(if partial { b" P " } else { b" F " });
    out.extend_from_slice(content);
    out.push(b'\n');
    out
}

/// Rotated files of `path`, oldest first.
pub fn rotated_files(path: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Vec::new();
    };
    let prefix = format!("{name}.");
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&prefix) && !n.ends_with(".tmp"))
        })
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// Rotated files then the current one: what a reader of all output wants.
pub fn all_files(path: &Path) -> Vec<PathBuf> {
    let mut v = rotated_files(path);
    v.push(path.to_path_buf());
    v
}

/// Appends records to a log file, rotating by size.
#[derive(Debug)]
pub struct LogWriter {
    path: PathBuf,
    max_size: u64,
    max_files: usize,
    file: File,
    size: u64,
}

impl LogWriter {
    /// Opens (appends to) `path`; `max_size` 0 disables rotation.
    pub fn open(path: &Path, max_size: u64, max_files: usize) -> Result<Self, LogFormatError> {
        let io = |source| LogFormatError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        Ok(LogWriter {
            path: path.to_path_buf(),
            max_size,
            max_files: max_files.max(2),
            file,
            size,
        })
    }

    /// Writes one record, rotating first if it would not fit.
    pub fn write_record(
        &mut self,
        stream: Stream,
        partial: bool,
        content: &[u8],
    ) -> Result<(), LogFormatError> {
        let rec = format(Timestamp::now(), stream, partial, content);
        if self.max_size > 0 && self.size > 0 && self.size + rec.len() as u64 > self.max_size {
            self.rotate()?;
        }
        self.file
            .write_all(&rec)
            .map_err(|source| LogFormatError::Io {
                path: self.path.clone(),
                source,
            })?;
        self.size += rec.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), LogFormatError> {
        let io = |source| LogFormatError::Io {
            path: self.path.clone(),
            source,
        };
        let now = Timestamp::now();
        let stamp = format!(
            "{}.{:09}",
            now.strftime("%Y%m%d-%H%M%S"),
            now.subsec_nanosecond()
        );
        let mut target = PathBuf::from(format!("{}.{stamp}", self.path.display()));
        let mut n = 0;
        while target.exists() {
            n += 1;
            target = PathBuf::from(format!("{}.{stamp}-{n}", self.path.display()));
        }
        std::fs::rename(&self.path, &target).map_err(io)?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        self.size = 0;
        let rotated = rotated_files(&self.path);
        let excess = (rotated.len() + 1).saturating_sub(self.max_files);
        for old in rotated.into_iter().take(excess) {
            let _ = std::fs::remove_file(old);
        }
        Ok(())
    }
}

/// Splits one stream's raw output into records: complete lines as `F`,
/// [`MAX_LINE`]-byte pieces of longer lines as `P`.
#[derive(Debug)]
pub struct LineSplitter {
    stream: Stream,
    buf: Vec<u8>,
}

impl LineSplitter {
    /// A splitter for `stream`.
    pub fn new(stream: Stream) -> Self {
        LineSplitter {
            stream,
            buf: Vec::new(),
        }
    }

    /// Feeds raw bytes; complete records go to `out`.
    pub fn feed(&mut self, data: &[u8], out: &mut LogWriter) -> Result<(), LogFormatError> {
        self.buf.extend_from_slice(data);
        let mut start = 0;
        loop {
            let rest = &self.buf[start..];
            match rest.iter().position(|b| *b == b'\n') {
                Some(nl) if nl <= MAX_LINE => {
                    let line = &rest[..nl];
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    out.write_record(self.stream, false, line)?;
                    start += nl + 1;
                }
                _ if rest.len() > MAX_LINE => {
                    out.write_record(self.stream, true, &rest[..MAX_LINE])?;
                    start += MAX_LINE;
                }
                _ => break,
            }
        }
        self.buf.drain(..start);
        Ok(())
    }

    /// End of stream: a trailing line without newline is written as `F`.
    pub fn finish(&mut self, out: &mut LogWriter) -> Result<(), LogFormatError> {
        if !self.buf.is_empty() {
            let line = std::mem::take(&mut self.buf);
            out.write_record(self.stream, false, &line)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_and_parse() {
        let ts: Timestamp = "2024-01-02T03:04:05.123456789Z".parse().unwrap();
        let rec = format(ts, Stream::Stderr, true, b"a b");
        assert_eq!(rec, b"2024-01-02T03:04:05.123456789Z stderr P a b\n");
        let r = parse(&rec[..rec.len() - 1]).unwrap();
        assert_eq!(
            r,
            Record {
                timestamp: ts,
                stream: Stream::Stderr,
                partial: true,
                content: b"a b"
            }
        );
        let r = parse(b"2024-01-02T03:04:05Z stdout F ").unwrap();
        assert_eq!(r.content, b"");
        assert!(parse(b"garbage").is_none());
        assert!(parse(b"2024-01-02T03:04:05Z stdin F x").is_none());
    }

    fn records(path: &Path) -> Vec<(bool, Vec<u8>)> {
        let data = std::fs::read(path).unwrap();
        data.split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| {
                let r = parse(l).unwrap();
                (r.partial, r.content.to_vec())
            })
            .collect()
    }

    #[test]
    fn splitting_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut w = LogWriter::open(&path, 0, 5).unwrap();
        let mut s = LineSplitter::new(Stream::Stdout);
        s.feed(b"hel", &mut w).unwrap();
        s.feed(b"lo\r\nworld\nlast", &mut w).unwrap();
        let long = vec![b'x'; MAX_LINE * 2 + 10];
        s.feed(b"\n", &mut w).unwrap();
        s.feed(&long, &mut w).unwrap();
        s.feed(b"\n", &mut w).unwrap();
        s.feed(b"tail", &mut w).unwrap();
        s.finish(&mut w).unwrap();
        let recs = records(&path);
        assert_eq!(recs[0], (false, b"hello".to_vec()));
        assert_eq!(recs[1], (false, b"world".to_vec()));
        assert_eq!(recs[2], (false, b"last".to_vec()));
        assert_eq!(recs[3], (true, vec![b'x'; MAX_LINE]));
        assert_eq!(recs[4], (true, vec![b'x'; MAX_LINE]));
        assert_eq!(recs[5], (false, vec![b'x'; 10]));
        assert_eq!(recs[6], (false, b"tail".to_vec()));
        assert_eq!(recs.len(), 7);
    }

    #[test]
    fn rotation_keeps_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut w = LogWriter::open(&path, 200, 3).unwrap();
        for i in 0..40 {
            w.write_record(Stream::Stdout, false, format!("line {i:02}").as_bytes())
                .unwrap();
        }
        let rotated = rotated_files(&path);
        assert_eq!(rotated.len(), 2);
        assert!(std::fs::metadata(&path).unwrap().len() <= 200);
        let all: Vec<_> = all_files(&path)
            .iter()
            .flat_map(|p| records(p))
            .map(|(_, c)| String::from_utf8(c).unwrap())
            .collect();
        assert_eq!(all.last().unwrap(), "line 39");
        // Consecutive and in order across files.
        let first: usize = all[0][5..].parse().unwrap();
        let expect: Vec<_> = (first..40).map(|i| format!("line {i:02}")).collect();
        assert_eq!(all, expect);
    }
}
