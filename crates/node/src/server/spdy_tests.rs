//! Tests of the SPDY/3.1 framing: round trips, a foreign zlib encoder's
//! header blocks, malformed frames, and property tests on untrusted input.

use super::*;
use proptest::prelude::*;

fn h(pairs: &[(&str, &str)]) -> Headers {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn dictionary_is_the_specifications() {
    let d = dictionary();
    assert_eq!(d.len(), 1423);
    assert!(d.starts_with(b"\0\0\0\x07options"));
    assert!(d.ends_with(b"enq=0."));
    // zlib names a dictionary by its Adler-32; this is the one every SPDY/3
    // peer (spdystream included) announces.
    let adler = Compress::new(Compression::default(), true)
        .set_dictionary(d)
        .unwrap();
    assert_eq!(adler, 0xe3c6_a7c2);
}

#[test]
fn decodes_header_blocks_of_another_zlib() {
    // Two consecutive SYN_STREAM header blocks from C zlib (level 9, the
    // SPDY dictionary, sync flushes): the second depends on the first's
    // window, as on a real connection.
    let a: &[u8] = &[
        120, 249, 227, 198, 167, 194, 2, 37, 58, 112, 58, 43, 41, 74, 77, 204, 133, 22, 37, 172,
        169, 160, 128, 134, 20, 203, 69, 160, 36, 204, 100, 97, 0, 36, 57, 139, 32, 145, 152, 9,
        74, 220, 140, 6, 0, 0, 0, 0, 255, 255,
    ];
    let b: &[u8] = &[194, 170, 21, 84, 10, 37, 18, 210, 9, 0, 0, 0, 255, 255];
    let mut d = HeaderDecompressor::default();
    assert_eq!(
        d.decompress(a).unwrap(),
        h(&[("streamtype", "error"), ("port", "80"), ("requestid", "0")])
    );
    assert_eq!(
        d.decompress(b).unwrap(),
        h(&[("streamtype", "data"), ("port", "80"), ("requestid", "0")])
    );
}

fn all_frames() -> Vec<Frame> {
    vec![
        Frame::SynStream {
            stream_id: 1,
            associated: 0,
            priority: 0,
            flags: 0,
            headers: h(&[
                ("streamtype", "error"),
                ("port", "8080"),
                ("requestid", "0"),
            ]),
        },
        Frame::SynReply {
            stream_id: 1,
            flags: 0,
            headers: vec![],
        },
        Frame::Data {
            stream_id: 3,
            flags: FLAG_FIN,
            data: Bytes::from_static(b"hello"),
        },
        Frame::Data {
            stream_id: 3,
            flags: 0,
            data: Bytes::new(),
        },
        Frame::RstStream {
            stream_id: 3,
            status: RST_CANCEL,
        },
        Frame::Settings {
            flags: 0,
            entries: vec![(0, 7, 65536), (1, 4, 100)],
        },
        Frame::Ping(7),
        Frame::GoAway {
            last_good: 5,
            status: 0,
        },
        Frame::Headers {
            stream_id: 5,
            flags: FLAG_FIN,
            headers: h(&[("a", "b\0c")]),
        },
        Frame::WindowUpdate {
            stream_id: 5,
            delta: 1000,
        },
    ]
}

#[test]
fn every_frame_round_trips_on_one_connection() {
    let (mut c, mut d) = (HeaderCompressor::default(), HeaderDecompressor::default());
    let mut wire = BytesMut::new();
    for f in all_frames() {
        encode(&f, &mut c, &mut wire).unwrap();
    }
    // Fed one byte at a time, the parser waits for whole frames.
    let mut buf = BytesMut::new();
    let mut got = vec![];
    for byte in wire.iter() {
        buf.put_u8(*byte);
        while let Some(f) = decode(&mut buf, &mut d).unwrap() {
            got.push(f);
        }
    }
    assert_eq!(got, all_frames());
    assert_eq!(header(&h(&[("A", "1\x002")]), "a"), Some("1"));
}

#[test]
fn malformed_frames_are_rejected() {
    let mut d = HeaderDecompressor::default();
    let mut bad_version = BytesMut::from(&[0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1][..]);
    assert_eq!(decode(&mut bad_version, &mut d), Err(SpdyError::Version(2)));
    let mut short_ping = BytesMut::from(&[0x80, 3, 0, 6, 0, 0, 0, 2, 0, 0][..]);
    assert!(matches!(
        decode(&mut short_ping, &mut d),
        Err(SpdyError::Invalid(_))
    ));
    let mut settings = BytesMut::from(&[0x80, 3, 0, 4, 0, 0, 0, 4, 0, 0, 0, 9][..]);
    assert!(matches!(
        decode(&mut settings, &mut d),
        Err(SpdyError::Invalid(_))
    ));
    let mut huge = BytesMut::from(&[0x80, 3, 0, 1, 0, 0xff, 0xff, 0xff][..]);
    assert!(matches!(
        decode(&mut huge, &mut d),
        Err(SpdyError::TooLarge(_))
    ));
    let mut data0 = BytesMut::from(&[0, 0, 0, 0, 0, 0, 0, 0][..]);
    assert!(decode(&mut data0, &mut d).is_err());
    // A SYN_STREAM whose header block is not zlib.
    let mut garbage = BytesMut::from(
        &[
            0x80, 3, 0, 1, 0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 2,
        ][..],
    );
    assert!(matches!(
        decode(&mut garbage, &mut d),
        Err(SpdyError::Zlib(_))
    ));
    // Unknown control frames are skipped, not errors.
    let mut unknown = BytesMut::from(&[0x80, 3, 0, 10, 0, 0, 0, 1, 9][..]);
    assert_eq!(
        decode(&mut unknown, &mut d).unwrap(),
        Some(Frame::Unknown { kind: 10 })
    );
    assert!(unknown.is_empty());
    // Header blocks: counts beyond the data, truncated, empty names, trailing bytes.
    assert!(decode_header_block(&[0, 0, 0, 9]).is_err());
    assert!(decode_header_block(&[0, 0, 0, 1, 0, 0, 0, 5, b'a']).is_err());
    assert!(decode_header_block(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
    assert!(decode_header_block(&[0, 0, 0, 0, 1]).is_err());
    assert_eq!(decode_header_block(&[0, 0, 0, 0]).unwrap(), vec![]);
}

#[test]
fn a_decompression_bomb_is_refused() {
    let big = vec![("x".to_string(), "a".repeat(MAX_HEADER_BLOCK + 10))];
    let block = HeaderCompressor::default().compress(&big).unwrap();
    assert!(block.len() < 4096);
    assert!(matches!(
        HeaderDecompressor::default().decompress(&block),
        Err(SpdyError::TooLarge(_))
    ));
}

fn header_strategy() -> impl Strategy<Value = Headers> {
    proptest::collection::vec(("[a-z][a-z0-9-]{0,12}", "[ -~]{0,40}"), 0..6)
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut d = HeaderDecompressor::default();
        let mut buf = BytesMut::from(&data[..]);
        while let Ok(Some(_)) = decode(&mut buf, &mut d) {}
        let _ = decode_header_block(&data);
    }

    #[test]
    fn control_frames_with_arbitrary_bodies_never_panic(
        kind in 0u16..12,
        flags in any::<u8>(),
        body in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut wire = BytesMut::new();
        wire.put_u16(0x8003);
        wire.put_u16(kind);
        wire.put_u32(((flags as u32) << 24) | body.len() as u32);
        wire.extend_from_slice(&body);
        let mut d = HeaderDecompressor::default();
        let _ = decode(&mut wire, &mut d);
    }

    #[test]
    fn frames_round_trip(
        blocks in proptest::collection::vec(header_strategy(), 1..5),
        data in proptest::collection::vec(any::<u8>(), 0..512),
        id in 1u32..0x7fff_ffff,
    ) {
        let (mut c, mut d) = (HeaderCompressor::default(), HeaderDecompressor::default());
        let mut frames = vec![];
        for (i, headers) in blocks.into_iter().enumerate() {
            frames.push(Frame::SynStream { stream_id: id, associated: 0, priority: (i % 8) as u8, flags: 0, headers });
            frames.push(Frame::Data { stream_id: id, flags: FLAG_FIN, data: Bytes::from(data.clone()) });
        }
        let mut wire = BytesMut::new();
        for f in &frames {
            encode(f, &mut c, &mut wire).unwrap();
        }
        let mut got = vec![];
        while let Some(f) = decode(&mut wire, &mut d).unwrap() {
            got.push(f);
        }
        prop_assert_eq!(got, frames);
    }
}
