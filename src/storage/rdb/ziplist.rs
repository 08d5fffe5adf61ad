//! The encodings older Redis versions wrote and Redis 7 still loads: ziplist (lists, hashes and
//! sorted sets before 7.0) and zipmap (hashes before 2.6). Read only, every length checked.

use bytes::Bytes;

/// Reads a ziplist's elements (integers as their decimal text).
#[must_use]
pub(crate) fn decode(zl: &[u8]) -> Option<Vec<Bytes>> {
    if zl.len() < 11 {
        return None;
    }
    let bytes = u32::from_le_bytes(zl[..4].try_into().ok()?) as usize;
    let count = u16::from_le_bytes(zl[8..10].try_into().ok()?);
    if bytes != zl.len() || zl[bytes - 1] != 0xff {
        return None;
    }
    let mut out = Vec::new();
    let mut p = 10;
    let mut prev_len = 0usize;
    while zl[p] != 0xff {
        let start = p;
        // The previous entry's length: checked, so a corrupt list is caught here.
        let prev = if zl[p] < 254 {
            p += 1;
            usize::from(zl[p - 1])
        } else {
            let v = u32::from_le_bytes(zl.get(p + 1..p + 5)?.try_into().ok()?) as usize;
            p += 5;
            v
        };
        if prev != prev_len {
            return None;
        }
        let enc = *zl.get(p)?;
        let string = |len: usize, at: usize| -> Option<(Bytes, usize)> {
            let end = at.checked_add(len)?;
            Some((Bytes::copy_from_slice(zl.get(at..end)?), end))
        };
        let int = |n: usize| -> Option<(Bytes, usize)> {
            let raw = zl.get(p + 1..p + 1 + n)?;
            let mut b = [0u8; 8];
            b[..n].copy_from_slice(raw);
            if raw[n - 1] & 0x80 != 0 {
                b[n..].fill(0xff);
            }
            Some((Bytes::from(i64::from_le_bytes(b).to_string()), p + 1 + n))
        };
        let (element, next) = match enc >> 6 {
            0 => string(usize::from(enc & 0x3f), p + 1)?,
            1 => string((usize::from(enc & 0x3f) << 8) | usize::from(*zl.get(p + 1)?), p + 2)?,
            2 if enc == 0x80 => {
                let len = u32::from_be_bytes(zl.get(p + 1..p + 5)?.try_into().ok()?) as usize;
                string(len, p + 5)?
            }
            3 => match enc {
                0xc0 => int(2)?,
                0xd0 => int(4)?,
                0xe0 => int(8)?,
                0xf0 => int(3)?,
                0xfe => int(1)?,
                0xf1..=0xfd => (Bytes::from((i64::from(enc & 0x0f) - 1).to_string()), p + 1),
                _ => return None,
            },
            _ => return None,
        };
        out.push(element);
        prev_len = next - start;
        p = next;
        if p >= bytes {
            return None;
        }
    }
    if p != bytes - 1 || (count != u16::MAX && usize::from(count) != out.len()) {
        return None;
    }
    Some(out)
}

/// Reads a zipmap's field/value pairs, flattened.
#[must_use]
pub(crate) fn decode_zipmap(zm: &[u8]) -> Option<Vec<Bytes>> {
    let mut out = Vec::new();
    let mut p = 1;
    let len_at = |p: usize| -> Option<(usize, usize)> {
        match *zm.get(p)? {
            254 => Some((u32::from_le_bytes(zm.get(p + 1..p + 5)?.try_into().ok()?) as usize, p + 5)),
            255 => None,
            n => Some((usize::from(n), p + 1)),
        }
    };
    loop {
        if *zm.get(p)? == 255 {
            break;
        }
        let (klen, at) = len_at(p)?;
        let kend = at.checked_add(klen)?;
        out.push(Bytes::copy_from_slice(zm.get(at..kend)?));
        let (vlen, at) = len_at(kend)?;
        let free = usize::from(*zm.get(at)?);
        let vend = (at + 1).checked_add(vlen)?;
        out.push(Bytes::copy_from_slice(zm.get(at + 1..vend)?));
        p = vend.checked_add(free)?;
    }
    (p == zm.len() - 1).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_entry_encoding() {
        // A ziplist of "ab", 7 (immediate), -2 (int8), 300 (int16), 70000 (int24).
        let mut body = Vec::new();
        let mut prev = 0u8;
        for entry in [
            vec![0x02, b'a', b'b'],
            vec![0xf8],
            vec![0xfe, 0xfe],
            vec![0xc0, 0x2c, 0x01],
            vec![0xf0, 0x70, 0x11, 0x01],
        ] {
            let mut e = vec![prev];
            e.extend(entry);
            prev = e.len() as u8;
            body.extend(e);
        }
        let mut zl = Vec::new();
        zl.extend(((11 + body.len()) as u32).to_le_bytes());
        zl.extend(0u32.to_le_bytes());
        zl.extend(5u16.to_le_bytes());
        zl.extend(&body);
        zl.push(0xff);
        let got = decode(&zl).unwrap();
        assert_eq!(got, ["ab", "7", "-2", "300", "70000"].map(|s| Bytes::from_static(s.as_bytes())));
        for cut in 0..zl.len() {
            assert!(decode(&zl[..cut]).is_none());
        }
        // A zipmap {"f": "v"} with one byte of free space.
        let zm = [1, 1, b'f', 1, 1, b'v', 0, 0xff];
        assert_eq!(decode_zipmap(&zm).unwrap(), ["f", "v"].map(|s| Bytes::from_static(s.as_bytes())));
        assert!(decode_zipmap(&zm[..6]).is_none());
    }
}
