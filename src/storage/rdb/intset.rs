//! Redis's intset: the encoding of small sets of integers (up to `set-max-intset-entries`).
//! Layout: element width in bytes (u32 LE: 2, 4 or 8), count (u32 LE), the values ascending.

/// Encodes `values` (sorted ascending, distinct) in the narrowest width that holds them all.
#[must_use]
pub(crate) fn encode(values: &[i64]) -> Vec<u8> {
    let width: usize = if values.iter().all(|v| i16::try_from(*v).is_ok()) {
        2
    } else if values.iter().all(|v| i32::try_from(*v).is_ok()) {
        4
    } else {
        8
    };
    let mut out = Vec::with_capacity(8 + width * values.len());
    out.extend_from_slice(&(width as u32).to_le_bytes());
    out.extend_from_slice(&(values.len() as u32).to_le_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes()[..width]);
    }
    out
}

/// Decodes an intset; `None` unless its width, size and strict ascending order check out.
#[must_use]
pub(crate) fn decode(blob: &[u8]) -> Option<Vec<i64>> {
    let width = u32::from_le_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    let count = u32::from_le_bytes(blob.get(4..8)?.try_into().ok()?) as usize;
    if ![2, 4, 8].contains(&width) || blob.len() != count.checked_mul(width)?.checked_add(8)? {
        return None;
    }
    let values: Vec<i64> = blob[8..]
        .chunks_exact(width)
        .map(|c| match width {
            2 => i64::from(i16::from_le_bytes([c[0], c[1]])),
            4 => i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            _ => i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]),
        })
        .collect();
    values.windows(2).all(|w| w[0] < w[1]).then_some(values)
}

#[cfg(test)]
mod tests {
    #[test]
    fn narrowest_width_and_strict_order() {
        let small = super::encode(&[-3, 1, 300]);
        assert_eq!(&small[..8], &[2, 0, 0, 0, 3, 0, 0, 0]);
        assert_eq!(super::decode(&small), Some(vec![-3, 1, 300]));
        let wide = super::encode(&[1, 1 << 40]);
        assert_eq!(wide[0], 8);
        assert_eq!(super::decode(&wide), Some(vec![1, 1 << 40]));
        assert_eq!(super::decode(&super::encode(&[2, 1])), None, "not ascending");
        assert_eq!(super::decode(&small[..9]), None);
    }
}
