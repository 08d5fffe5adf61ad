//! Redis's CRC-64 (Jones polynomial, reflected, no final xor): the checksum of DUMP payloads and
//! the trailer of RDB files.

/// The reflected Jones polynomial.
const POLY: u64 = 0x95ac_9329_ac4b_c9b5;

/// Slice-by-8 tables: `TABLES[0]` is the classic one-byte table; `TABLES[k][b]` is the CRC of
/// byte `b` followed by `k` zero bytes, so eight bytes take eight independent lookups instead of
/// a chain of eight (Redis's crcspeed does the same; ~4x the byte-at-a-time speed, which matters
/// at a file's size).
const TABLES: [[u64; 256]; 8] = {
    let mut tables = [[0u64; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u64;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ POLY } else { crc >> 1 };
            bit += 1;
        }
        tables[0][i] = crc;
        i += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = tables[k - 1][i];
            tables[k][i] = (prev >> 8) ^ tables[0][(prev & 0xff) as usize];
            i += 1;
        }
        k += 1;
    }
    tables
};

/// Continues `crc` over `data` (start with 0).
#[must_use]
pub(crate) fn crc64(mut crc: u64, data: &[u8]) -> u64 {
    let t = &TABLES;
    let mut words = data.chunks_exact(8);
    for word in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        let x = crc ^ u64::from_le_bytes(bytes);
        crc = t[7][(x & 0xff) as usize]
            ^ t[6][((x >> 8) & 0xff) as usize]
            ^ t[5][((x >> 16) & 0xff) as usize]
            ^ t[4][((x >> 24) & 0xff) as usize]
            ^ t[3][((x >> 32) & 0xff) as usize]
            ^ t[2][((x >> 40) & 0xff) as usize]
            ^ t[1][((x >> 48) & 0xff) as usize]
            ^ t[0][(x >> 56) as usize];
    }
    for &b in words.remainder() {
        crc = t[0][((crc ^ u64::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

#[cfg(test)]
mod tests {
    #[test]
    fn matches_redis_check_value() {
        // Redis's crc64.c self-test: crc64(0, "123456789") == 0xe9c6d914c4b8d9ca.
        assert_eq!(super::crc64(0, b"123456789"), 0xe9c6_d914_c4b8_d9ca);
        let split = super::crc64(super::crc64(0, b"1234"), b"56789");
        assert_eq!(split, 0xe9c6_d914_c4b8_d9ca, "a CRC continues across pieces");
    }

    #[test]
    fn eight_bytes_at_a_time_equal_one_at_a_time() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for split in [0, 1, 7, 8, 9, 500, 999, 1000] {
            let mut bytewise = 0u64;
            for &b in &data {
                bytewise = super::TABLES[0][((bytewise ^ u64::from(b)) & 0xff) as usize] ^ (bytewise >> 8);
            }
            let pieces = super::crc64(super::crc64(0, &data[..split]), &data[split..]);
            assert_eq!(pieces, bytewise, "split at {split}");
        }
    }
}
