//! SPDY/3.1 framing, as kubectl's port-forward speaks it (moby/spdystream):
//! frame parsing and serialisation, and header blocks compressed with one
//! zlib stream per direction primed with the SPDY/3 dictionary.
//!
//! Written here because no maintained Rust SPDY crate exists; only what the
//! Kubernetes stream protocols use is implemented. Flow control is not
//! enforced (spdystream neither sends nor honours WINDOW_UPDATE), unknown
//! control frames are skipped as the specification asks, and every length
//! read from the peer is bounded before anything is allocated.

use std::sync::OnceLock;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// Largest control frame accepted (header blocks of a few entries in practice).
pub const MAX_CONTROL_LEN: usize = 1 << 20;
/// Largest decompressed header block accepted.
pub const MAX_HEADER_BLOCK: usize = 256 << 10;
/// DATA frame flag: last frame of the sender's half of the stream.
pub const FLAG_FIN: u8 = 0x01;
/// RST_STREAM status codes used here.
pub const RST_PROTOCOL_ERROR: u32 = 1;
pub const RST_REFUSED_STREAM: u32 = 3;
pub const RST_CANCEL: u32 = 5;

const VERSION: u16 = 3;

/// A malformed or unsupported frame.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpdyError {
    #[error("unsupported SPDY version {0}")]
    Version(u16),
    #[error("frame of {0} bytes is too large")]
    TooLarge(usize),
    #[error("invalid {0} frame")]
    Invalid(&'static str),
    #[error("invalid header block: {0}")]
    Headers(&'static str),
    #[error("header compression: {0}")]
    Zlib(String),
}

/// Header name/value pairs (names lower-case; several values joined by NUL).
pub type Headers = Vec<(String, String)>;

/// One SPDY/3.1 frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream_id: u32,
        associated: u32,
        priority: u8,
        flags: u8,
        headers: Headers,
    },
    SynReply {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    Settings {
        flags: u8,
        entries: Vec<(u8, u32, u32)>,
    },
    Ping(u32),
    GoAway {
        last_good: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    Data {
        stream_id: u32,
        flags: u8,
        data: Bytes,
    },
    /// A control frame of a type this implementation does not know.
    Unknown {
        kind: u16,
    },
}

/// The SPDY/3 header compression dictionary (1423 bytes, from the
/// specification: length-prefixed common header words, then a tail of
/// common values).
pub fn dictionary() -> &'static [u8] {
    static DICT: OnceLock<Vec<u8>> = OnceLock::new();
    DICT.get_or_init(|| {
        const WORDS: &[&str] = &[
            "options",
            "head",
            "post",
            "put",
            "delete",
            "trace",
            "accept",
            "accept-charset",
            "accept-encoding",
            "accept-language",
            "accept-ranges",
            "age",
            "allow",
            "authorization",
            "cache-control",
            "connection",
            "content-base",
            "content-encoding",
            "content-language",
            "content-length",
            "content-location",
            "content-md5",
            "content-range",
            "content-type",
            "date",
            "etag",
            "expect",
            "expires",
            "from",
            "host",
            "if-match",
            "if-modified-since",
            "if-none-match",
            "if-range",
            "if-unmodified-since",
            "last-modified",
            "location",
            "max-forwards",
            "pragma",
            "proxy-authenticate",
            "proxy-authorization",
            "range",
            "referer",
            "retry-after",
            "server",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
            "user-agent",
            "vary",
            "via",
            "warning",
            "www-authenticate",
            "method",
            "get",
            "status",
            "200 OK",
            "version",
            "HTTP/1.1",
            "url",
            "public",
            "set-cookie",
            "keep-alive",
            "origin",
        ];
        const TAIL: &str = concat!(
            "100101201202205206300302303304305306307402405406407408409410411412413414415416417",
            "502504505203 Non-Authoritative Information204 No Content301 Moved Permanently",
            "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error",
            "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct ",
            "Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,",
            "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,",
            "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8",
            "charset=iso-8859-1,utf-,*,enq=0."
        );
        let mut d = Vec::with_capacity(1423);
        for w in WORDS {
            d.extend_from_slice(&(w.len() as u32).to_be_bytes());
            d.extend_from_slice(w.as_bytes());
        }
        d.extend_from_slice(TAIL.as_bytes());
        d
    })
}

/// Serialises a header block (uncompressed): counts and lengths are 32-bit.
pub fn encode_header_block(headers: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.put_u32(headers.len() as u32);
    for (k, v) in headers {
        out.put_u32(k.len() as u32);
        out.extend_from_slice(k.as_bytes());
        out.put_u32(v.len() as u32);
        out.extend_from_slice(v.as_bytes());
    }
    out
}

/// Parses an uncompressed header block.
pub fn decode_header_block(mut b: &[u8]) -> Result<Headers, SpdyError> {
    fn take<'a>(b: &mut &'a [u8]) -> Result<&'a [u8], SpdyError> {
        if b.len() < 4 {
            return Err(SpdyError::Headers("truncated length"));
        }
        let n = b.get_u32() as usize;
        if n > b.len() {
            return Err(SpdyError::Headers("length beyond block"));
        }
        let (s, rest) = b.split_at(n);
        *b = rest;
        Ok(s)
    }
    if b.len() < 4 {
        return Err(SpdyError::Headers("truncated count"));
    }
    let count = b.get_u32() as usize;
    // Each pair takes at least 8 bytes: bound the count before allocating.
    if count > b.len() / 8 {
        return Err(SpdyError::Headers("too many pairs"));
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let k = take(&mut b)?;
        if k.is_empty() {
            return Err(SpdyError::Headers("empty name"));
        }
        let k = std::str::from_utf8(k).map_err(|_| SpdyError::Headers("name not UTF-8"))?;
        let v = take(&mut b)?;
        let v = String::from_utf8_lossy(v).into_owned();
        out.push((k.to_ascii_lowercase(), v));
    }
    if !b.is_empty() {
        return Err(SpdyError::Headers("trailing bytes"));
    }
    Ok(out)
}

/// Compresses header blocks: one zlib stream for the connection's direction.
pub struct HeaderCompressor(Compress);

impl Default for HeaderCompressor {
    fn default() -> Self {
        let mut c = Compress::new(Compression::default(), true);
        c.set_dictionary(dictionary())
            .expect("a fresh zlib stream accepts a dictionary");
        HeaderCompressor(c)
    }
}

impl HeaderCompressor {
    pub fn compress(&mut self, headers: &[(String, String)]) -> Result<Vec<u8>, SpdyError> {
        let input = encode_header_block(headers);
        let mut out = Vec::with_capacity(input.len() + 64);
        let mut consumed = 0usize;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(256);
            }
            let before = self.0.total_in();
            self.0
                .compress_vec(&input[consumed..], &mut out, FlushCompress::Sync)
                .map_err(|e| SpdyError::Zlib(e.to_string()))?;
            consumed += (self.0.total_in() - before) as usize;
            // A sync flush is complete once all input is in and zlib left
            // spare room in the output.
            if consumed == input.len() && out.capacity() > out.len() {
                return Ok(out);
            }
        }
    }
}

/// Decompresses header blocks of the peer's direction.
pub struct HeaderDecompressor(Decompress);

impl Default for HeaderDecompressor {
    fn default() -> Self {
        HeaderDecompressor(Decompress::new(true))
    }
}

impl HeaderDecompressor {
    pub fn decompress(&mut self, input: &[u8]) -> Result<Headers, SpdyError> {
        let zerr = |e: flate2::DecompressError| SpdyError::Zlib(e.to_string());
        let mut out = Vec::with_capacity(256);
        let mut consumed = 0usize;
        loop {
            if out.capacity() - out.len() < 256 {
                out.reserve(1024);
            }
            let (in_before, out_before) = (self.0.total_in(), self.0.total_out());
            let r = self
                .0
                .decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync);
            consumed += (self.0.total_in() - in_before) as usize;
            match r {
                Ok(Status::StreamEnd) => return Err(SpdyError::Zlib("stream ended".into())),
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.0.set_dictionary(dictionary()).map_err(zerr)?;
                    continue;
                }
                Err(e) => return Err(zerr(e)),
            }
            if out.len() > MAX_HEADER_BLOCK {
                return Err(SpdyError::TooLarge(out.len()));
            }
            let progressed = self.0.total_in() != in_before || self.0.total_out() != out_before;
            if consumed == input.len() && out.capacity() > out.len() {
                break;
            }
            if !progressed {
                return Err(SpdyError::Zlib("no progress".into()));
            }
        }
        decode_header_block(&out)
    }
}

fn stream_id(b: &mut &[u8]) -> u32 {
    b.get_u32() & 0x7fff_ffff
}

fn need(body: &[u8], n: usize, what: &'static str) -> Result<(), SpdyError> {
    if body.len() < n {
        Err(SpdyError::Invalid(what))
    } else {
        Ok(())
    }
}

/// Parses one frame from the front of `buf` if it holds a whole one.
pub fn decode(
    buf: &mut BytesMut,
    dec: &mut HeaderDecompressor,
) -> Result<Option<Frame>, SpdyError> {
    if buf.len() < 8 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([0, buf[5], buf[6], buf[7]]) as usize;
    let control = buf[0] & 0x80 != 0;
    if control && len > MAX_CONTROL_LEN {
        return Err(SpdyError::TooLarge(len));
    }
    if buf.len() < 8 + len {
        buf.reserve(8 + len - buf.len());
        return Ok(None);
    }
    let head = buf.split_to(8);
    let flags = head[4];
    let body = buf.split_to(len).freeze();
    if !control {
        let id = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        if id == 0 {
            return Err(SpdyError::Invalid("DATA"));
        }
        return Ok(Some(Frame::Data {
            stream_id: id,
            flags,
            data: body,
        }));
    }
    let version = u16::from_be_bytes([head[0], head[1]]) & 0x7fff;
    if version != VERSION {
        return Err(SpdyError::Version(version));
    }
    let kind = u16::from_be_bytes([head[2], head[3]]);
    let mut b: &[u8] = &body;
    let frame = match kind {
        1 => {
            need(b, 10, "SYN_STREAM")?;
            let stream_id = stream_id(&mut b);
            let associated = b.get_u32() & 0x7fff_ffff;
            let priority = b.get_u8() >> 5;
            let _slot = b.get_u8();
            if stream_id == 0 {
                return Err(SpdyError::Invalid("SYN_STREAM"));
            }
            Frame::SynStream {
                stream_id,
                associated,
                priority,
                flags,
                headers: dec.decompress(b)?,
            }
        }
        2 | 8 => {
            need(b, 4, "SYN_REPLY")?;
            let stream_id = stream_id(&mut b);
            let headers = dec.decompress(b)?;
            if kind == 2 {
                Frame::SynReply {
                    stream_id,
                    flags,
                    headers,
                }
            } else {
                Frame::Headers {
                    stream_id,
                    flags,
                    headers,
                }
            }
        }
        3 => {
            need(b, 8, "RST_STREAM")?;
            Frame::RstStream {
                stream_id: stream_id(&mut b),
                status: b.get_u32(),
            }
        }
        4 => {
            need(b, 4, "SETTINGS")?;
            let n = b.get_u32() as usize;
            if b.len() != n.saturating_mul(8) {
                return Err(SpdyError::Invalid("SETTINGS"));
            }
            let entries = (0..n)
                .map(|_| {
                    let w = b.get_u32();
                    ((w >> 24) as u8, w & 0x00ff_ffff, b.get_u32())
                })
                .collect();
            Frame::Settings { flags, entries }
        }
        6 => {
            need(b, 4, "PING")?;
            Frame::Ping(b.get_u32())
        }
        7 => {
            need(b, 8, "GOAWAY")?;
            Frame::GoAway {
                last_good: stream_id(&mut b),
                status: b.get_u32(),
            }
        }
        9 => {
            need(b, 8, "WINDOW_UPDATE")?;
            Frame::WindowUpdate {
                stream_id: stream_id(&mut b),
                delta: b.get_u32() & 0x7fff_ffff,
            }
        }
        kind => Frame::Unknown { kind },
    };
    Ok(Some(frame))
}

fn control(out: &mut BytesMut, kind: u16, flags: u8, body: &[u8]) -> Result<(), SpdyError> {
    if body.len() > MAX_CONTROL_LEN {
        return Err(SpdyError::TooLarge(body.len()));
    }
    out.put_u16(0x8000 | VERSION);
    out.put_u16(kind);
    out.put_u32(((flags as u32) << 24) | body.len() as u32);
    out.extend_from_slice(body);
    Ok(())
}

/// Serialises `frame` onto `out`.
pub fn encode(
    frame: &Frame,
    comp: &mut HeaderCompressor,
    out: &mut BytesMut,
) -> Result<(), SpdyError> {
    let mut body = Vec::new();
    match frame {
        Frame::Data {
            stream_id,
            flags,
            data,
        } => {
            if data.len() > 0x00ff_ffff {
                return Err(SpdyError::TooLarge(data.len()));
            }
            out.put_u32(stream_id & 0x7fff_ffff);
            out.put_u32(((*flags as u32) << 24) | data.len() as u32);
            out.extend_from_slice(data);
            Ok(())
        }
        Frame::SynStream {
            stream_id,
            associated,
            priority,
            flags,
            headers,
        } => {
            body.put_u32(stream_id & 0x7fff_ffff);
            body.put_u32(associated & 0x7fff_ffff);
            body.put_u8((priority & 0x07) << 5);
            body.put_u8(0);
            body.extend_from_slice(&comp.compress(headers)?);
            control(out, 1, *flags, &body)
        }
        Frame::SynReply {
            stream_id,
            flags,
            headers,
        }
        | Frame::Headers {
            stream_id,
            flags,
            headers,
        } => {
            let kind = if matches!(frame, Frame::SynReply { .. }) {
                2
            } else {
                8
            };
            body.put_u32(stream_id & 0x7fff_ffff);
            body.extend_from_slice(&comp.compress(headers)?);
            control(out, kind, *flags, &body)
        }
        Frame::RstStream { stream_id, status } => {
            body.put_u32(stream_id & 0x7fff_ffff);
            body.put_u32(*status);
            control(out, 3, 0, &body)
        }
        Frame::Settings { flags, entries } => {
            body.put_u32(entries.len() as u32);
            for (f, id, v) in entries {
                body.put_u32(((*f as u32) << 24) | (id & 0x00ff_ffff));
                body.put_u32(*v);
            }
            control(out, 4, *flags, &body)
        }
        Frame::Ping(id) => control(out, 6, 0, &id.to_be_bytes()),
        Frame::GoAway { last_good, status } => {
            body.put_u32(last_good & 0x7fff_ffff);
            body.put_u32(*status);
            control(out, 7, 0, &body)
        }
        Frame::WindowUpdate { stream_id, delta } => {
            body.put_u32(stream_id & 0x7fff_ffff);
            body.put_u32(delta & 0x7fff_ffff);
            control(out, 9, 0, &body)
        }
        Frame::Unknown { .. } => Err(SpdyError::Invalid("unknown")),
    }
}

/// The first value of header `name` (case-insensitive).
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.split('\0').next().unwrap_or(""))
}

#[cfg(test)]
#[path = "spdy_tests.rs"]
mod tests;
