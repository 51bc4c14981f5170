//! A minimal protobuf wire-format reader over a byte slice: varints, 64-bit,
//! length-delimited and 32-bit values. Every read is bounds-checked; malformed
//! input is an error, never a panic.

use super::ProtobufError;

/// Largest valid field number (2^29 - 1).
const MAX_FIELD_NUMBER: u64 = (1 << 29) - 1;

/// One field value as it appears on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WireValue<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 2: strings, bytes, messages, packed repeated numbers.
    Bytes(&'a [u8]),
    /// Wire type 5.
    Fixed32(u32),
}

impl<'a> WireValue<'a> {
    /// The wire type's name, for error messages.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            WireValue::Varint(_) => "varint",
            WireValue::Fixed64(_) => "64-bit",
            WireValue::Bytes(_) => "length-delimited",
            WireValue::Fixed32(_) => "32-bit",
        }
    }

    fn mismatch(&self, wanted: &str) -> ProtobufError {
        malformed(format!("{} value where {wanted} belongs", self.type_name()))
    }

    /// The value of a varint field.
    pub(crate) fn varint(&self) -> Result<u64, ProtobufError> {
        match *self {
            WireValue::Varint(v) => Ok(v),
            _ => Err(self.mismatch("a varint")),
        }
    }

    /// The payload of a length-delimited field.
    pub(crate) fn bytes(&self) -> Result<&'a [u8], ProtobufError> {
        match *self {
            WireValue::Bytes(b) => Ok(b),
            _ => Err(self.mismatch("a length-delimited value")),
        }
    }

    /// The payload of a length-delimited field as UTF-8 text.
    pub(crate) fn str(&self) -> Result<&'a str, ProtobufError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| malformed("string is not valid UTF-8"))
    }

    /// The value of a 64-bit field.
    pub(crate) fn fixed64(&self) -> Result<u64, ProtobufError> {
        match *self {
            WireValue::Fixed64(v) => Ok(v),
            _ => Err(self.mismatch("a 64-bit value")),
        }
    }
}

pub(crate) fn malformed(reason: impl Into<String>) -> ProtobufError {
    ProtobufError::Malformed {
        path: String::new(),
        reason: reason.into(),
    }
}

/// Reads fields one after another from a message's bytes.
#[derive(Clone, Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// A base-128 varint of at most 10 bytes that fits in 64 bits.
    pub(crate) fn varint(&mut self) -> Result<u64, ProtobufError> {
        let mut value: u64 = 0;
        for (i, &b) in self.buf.iter().enumerate().take(10) {
            if i == 9 && b > 1 {
                return Err(malformed("varint overflows 64 bits"));
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                self.buf = self.buf.get(i + 1..).unwrap_or_default();
                return Ok(value);
            }
        }
        Err(malformed("truncated varint"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtobufError> {
        let (head, tail) = self.buf.split_at_checked(n).ok_or_else(|| {
            malformed(format!(
                "truncated: {n} bytes wanted, {} left",
                self.buf.len()
            ))
        })?;
        self.buf = tail;
        Ok(head)
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], ProtobufError> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    /// A little-endian 64-bit value (packed `double` elements).
    pub(crate) fn fixed64(&mut self) -> Result<u64, ProtobufError> {
        Ok(u64::from_le_bytes(self.fixed::<8>()?))
    }

    /// The next field's number and value, or `None` at the end.
    pub(crate) fn field(&mut self) -> Result<Option<(u32, WireValue<'a>)>, ProtobufError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let number = key >> 3;
        if number == 0 || number > MAX_FIELD_NUMBER {
            return Err(malformed(format!("invalid field number {number}")));
        }
        let value = match key & 7 {
            0 => WireValue::Varint(self.varint()?),
            1 => WireValue::Fixed64(self.fixed64()?),
            2 => {
                let len = self.varint()?;
                let len = usize::try_from(len)
                    .map_err(|_| malformed(format!("length {len} too large")))?;
                WireValue::Bytes(self.take(len)?)
            }
            5 => WireValue::Fixed32(u32::from_le_bytes(self.fixed::<4>()?)),
            3 | 4 => return Err(malformed("groups are not supported")),
            t => return Err(malformed(format!("invalid wire type {t}"))),
        };
        // Lossless: number <= 2^29 - 1.
        let number = u32::try_from(number).map_err(|_| malformed("invalid field number"))?;
        Ok(Some((number, value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(buf: &[u8]) -> Result<Vec<(u32, WireValue<'_>)>, ProtobufError> {
        let mut r = Reader::new(buf);
        let mut out = Vec::new();
        while let Some(f) = r.field()? {
            out.push(f);
        }
        Ok(out)
    }

    #[test]
    fn reads_every_wire_type() {
        let buf = [
            0x08, 0x96, 0x01, // 1: varint 150
            0x11, 1, 0, 0, 0, 0, 0, 0, 0, // 2: fixed64 1
            0x1a, 0x03, b'a', b'b', b'c', // 3: "abc"
            0x25, 2, 0, 0, 0, // 4: fixed32 2
        ];
        assert_eq!(
            fields(&buf).unwrap(),
            vec![
                (1, WireValue::Varint(150)),
                (2, WireValue::Fixed64(1)),
                (3, WireValue::Bytes(b"abc")),
                (4, WireValue::Fixed32(2)),
            ]
        );
    }

    #[test]
    fn varint_limits() {
        // u64::MAX: nine 0xff then 0x01.
        let mut max = vec![0xff; 9];
        max.push(0x01);
        assert_eq!(Reader::new(&max).varint().unwrap(), u64::MAX);
        // -1 as int32 is sign-extended to ten bytes.
        let mut r = Reader::new(&max);
        assert_eq!(r.varint().unwrap() as i64 as i32, -1);
        assert!(r.is_empty());

        let mut over = vec![0xff; 9];
        over.push(0x02);
        assert!(Reader::new(&over).varint().is_err());
        assert!(Reader::new(&[0xff; 11]).varint().is_err());
        assert!(Reader::new(&[0x80, 0x80]).varint().is_err());
        assert!(Reader::new(&[]).varint().is_err());
    }

    #[test]
    fn malformed_input_is_an_error() {
        for bad in [
            &[0x0a, 0x05, b'a'][..],                   // length past the end
            &[0x0a][..],                               // missing length
            &[0x08][..],                               // missing varint
            &[0x09, 1, 2, 3][..],                      // short fixed64
            &[0x0d, 1][..],                            // short fixed32
            &[0x00, 0x00][..],                         // field number 0
            &[0x0b][..],                               // start group
            &[0x0e, 0][..],                            // wire type 6
            &[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f][..], // huge length
        ] {
            assert!(fields(bad).is_err(), "{bad:?} accepted");
        }
        // Field number above 2^29 - 1.
        let mut r = Reader::new(&[0xf8, 0xff, 0xff, 0xff, 0x7f, 0x00]);
        assert!(r.field().is_err());
    }
}
