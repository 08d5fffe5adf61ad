//! OpenSSL cipher strings, as Redis users write them in `tls-ciphers` (TLS 1.2) and
//! `tls-ciphersuites` (TLS 1.3), narrowed to what rustls implements.
//!
//! A `tls-ciphers` string is evaluated as OpenSSL's `SSL_CTX_set_cipher_list` does, over the
//! TLS 1.2 suites OpenSSL 3 knows: items separated by `:` (or `,`, space), each a suite name or
//! an alias (`HIGH`, `ECDHE`, `aRSA`, `AESGCM`, ...), aliases joined by `+` meaning all of them
//! (`ECDHE+AESGCM`); `!` removes for good, `-` removes, `+` in front reorders (a no-op here:
//! the server's preference order is fixed), `@STRENGTH` and `@SECLEVEL=n` sort and filter (also
//! no-ops: what rustls offers is all strong). The suites selected that rustls implements are
//! offered: the ECDHE ones with AES-GCM or ChaCha20-Poly1305. rustls deliberately lacks CBC
//! modes, RSA and DHE key exchange, 3DES, Camellia and NULL ciphers: a string that selects only
//! those is an error naming what is supported, and one that names such a suite by name gets a
//! warning. A word neither OpenSSL nor this table knows is an error too (OpenSSL would ignore
//! it silently; a typo in a security setting should not pass).

/// One TLS 1.2 suite as OpenSSL names and classifies it.
struct Suite {
    /// OpenSSL's name.
    openssl: &'static str,
    /// The IANA name (rustls prints it with the same words).
    iana: &'static str,
    /// Whether rustls implements it.
    rustls: bool,
    /// Key exchange: `ECDHE`, `DHE` or `RSA`.
    kx: &'static str,
    /// Authentication: `RSA`, `ECDSA` or `NULL`.
    au: &'static str,
    /// Encryption: `AESGCM128`, `AES256`, `CHACHA20`, `CAMELLIA128`, `3DES`, `NULL`, ...
    enc: &'static str,
    /// MAC: `AEAD`, `SHA1`, `SHA256` or `SHA384`.
    mac: &'static str,
}

macro_rules! suites {
    ($( $openssl:literal, $iana:literal, $rustls:literal, $kx:literal, $au:literal, $enc:literal, $mac:literal; )*) => {
        &[ $( Suite { openssl: $openssl, iana: $iana, rustls: $rustls, kx: $kx, au: $au, enc: $enc, mac: $mac }, )* ]
    };
}

/// The TLS 1.2 suites of OpenSSL 3's `ALL:COMPLEMENTOFALL` (those with PSK, SRP, DSS, ARIA and
/// CCM left out: no Redis deployment names them, and the aliases for them are still known).
const SUITES: &[Suite] = suites! {
    "ECDHE-ECDSA-AES256-GCM-SHA384", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", true, "ECDHE", "ECDSA", "AESGCM256", "AEAD";
    "ECDHE-RSA-AES256-GCM-SHA384", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", true, "ECDHE", "RSA", "AESGCM256", "AEAD";
    "DHE-RSA-AES256-GCM-SHA384", "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", false, "DHE", "RSA", "AESGCM256", "AEAD";
    "ECDHE-ECDSA-CHACHA20-POLY1305", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", true, "ECDHE", "ECDSA", "CHACHA20", "AEAD";
    "ECDHE-RSA-CHACHA20-POLY1305", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", true, "ECDHE", "RSA", "CHACHA20", "AEAD";
    "DHE-RSA-CHACHA20-POLY1305", "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256", false, "DHE", "RSA", "CHACHA20", "AEAD";
    "ECDHE-ECDSA-AES128-GCM-SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", true, "ECDHE", "ECDSA", "AESGCM128", "AEAD";
    "ECDHE-RSA-AES128-GCM-SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", true, "ECDHE", "RSA", "AESGCM128", "AEAD";
    "DHE-RSA-AES128-GCM-SHA256", "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", false, "DHE", "RSA", "AESGCM128", "AEAD";
    "ECDHE-ECDSA-AES256-SHA384", "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384", false, "ECDHE", "ECDSA", "AES256", "SHA384";
    "ECDHE-RSA-AES256-SHA384", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", false, "ECDHE", "RSA", "AES256", "SHA384";
    "DHE-RSA-AES256-SHA256", "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256", false, "DHE", "RSA", "AES256", "SHA256";
    "ECDHE-ECDSA-AES128-SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", false, "ECDHE", "ECDSA", "AES128", "SHA256";
    "ECDHE-RSA-AES128-SHA256", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", false, "ECDHE", "RSA", "AES128", "SHA256";
    "DHE-RSA-AES128-SHA256", "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256", false, "DHE", "RSA", "AES128", "SHA256";
    "ECDHE-ECDSA-AES256-SHA", "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", false, "ECDHE", "ECDSA", "AES256", "SHA1";
    "ECDHE-RSA-AES256-SHA", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", false, "ECDHE", "RSA", "AES256", "SHA1";
    "DHE-RSA-AES256-SHA", "TLS_DHE_RSA_WITH_AES_256_CBC_SHA", false, "DHE", "RSA", "AES256", "SHA1";
    "ECDHE-ECDSA-AES128-SHA", "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", false, "ECDHE", "ECDSA", "AES128", "SHA1";
    "ECDHE-RSA-AES128-SHA", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", false, "ECDHE", "RSA", "AES128", "SHA1";
    "DHE-RSA-AES128-SHA", "TLS_DHE_RSA_WITH_AES_128_CBC_SHA", false, "DHE", "RSA", "AES128", "SHA1";
    "AES256-GCM-SHA384", "TLS_RSA_WITH_AES_256_GCM_SHA384", false, "RSA", "RSA", "AESGCM256", "AEAD";
    "AES128-GCM-SHA256", "TLS_RSA_WITH_AES_128_GCM_SHA256", false, "RSA", "RSA", "AESGCM128", "AEAD";
    "AES256-SHA256", "TLS_RSA_WITH_AES_256_CBC_SHA256", false, "RSA", "RSA", "AES256", "SHA256";
    "AES128-SHA256", "TLS_RSA_WITH_AES_128_CBC_SHA256", false, "RSA", "RSA", "AES128", "SHA256";
    "AES256-SHA", "TLS_RSA_WITH_AES_256_CBC_SHA", false, "RSA", "RSA", "AES256", "SHA1";
    "AES128-SHA", "TLS_RSA_WITH_AES_128_CBC_SHA", false, "RSA", "RSA", "AES128", "SHA1";
    "CAMELLIA256-SHA", "TLS_RSA_WITH_CAMELLIA_256_CBC_SHA", false, "RSA", "RSA", "CAMELLIA256", "SHA1";
    "CAMELLIA128-SHA", "TLS_RSA_WITH_CAMELLIA_128_CBC_SHA", false, "RSA", "RSA", "CAMELLIA128", "SHA1";
    "DES-CBC3-SHA", "TLS_RSA_WITH_3DES_EDE_CBC_SHA", false, "RSA", "RSA", "3DES", "SHA1";
    "AECDH-AES256-SHA", "TLS_ECDH_anon_WITH_AES_256_CBC_SHA", false, "ECDHE", "NULL", "AES256", "SHA1";
    "AECDH-AES128-SHA", "TLS_ECDH_anon_WITH_AES_128_CBC_SHA", false, "ECDHE", "NULL", "AES128", "SHA1";
    "ADH-AES256-GCM-SHA384", "TLS_DH_anon_WITH_AES_256_GCM_SHA384", false, "DHE", "NULL", "AESGCM256", "AEAD";
    "ADH-AES128-GCM-SHA256", "TLS_DH_anon_WITH_AES_128_GCM_SHA256", false, "DHE", "NULL", "AESGCM128", "AEAD";
    "ECDHE-ECDSA-NULL-SHA", "TLS_ECDHE_ECDSA_WITH_NULL_SHA", false, "ECDHE", "ECDSA", "NULL", "SHA1";
    "ECDHE-RSA-NULL-SHA", "TLS_ECDHE_RSA_WITH_NULL_SHA", false, "ECDHE", "RSA", "NULL", "SHA1";
    "NULL-SHA256", "TLS_RSA_WITH_NULL_SHA256", false, "RSA", "RSA", "NULL", "SHA256";
};

/// OpenSSL aliases for suites none of [`SUITES`] is (PSK, SRP, DSS, ARIA, CCM, GOST, export
/// and weak ciphers): known words, so they are no error, that select nothing.
const EMPTY_ALIASES: &[&str] = &[
    "LOW",
    "EXPORT",
    "EXP",
    "PSK",
    "kPSK",
    "aPSK",
    "kECDHEPSK",
    "kDHEPSK",
    "kRSAPSK",
    "ECDHEPSK",
    "DHEPSK",
    "RSAPSK",
    "SRP",
    "kSRP",
    "aSRP",
    "DSS",
    "aDSS",
    "IDEA",
    "SEED",
    "RC4",
    "RC2",
    "DES",
    "MD5",
    "ARIA",
    "ARIA128",
    "ARIA256",
    "ARIAGCM",
    "GOST",
    "kGOST",
    "aGOST",
    "aGOST01",
    "aGOST12",
    "GOST89MAC",
    "GOST94",
    "GOST12",
    "SUITEB128",
    "SUITEB128ONLY",
    "SUITEB128C2",
    "SUITEB192",
    "CCM",
    "AESCCM",
    "AESCCM8",
    "FIPS",
    "kDHr",
    "kDHd",
    "kECDHr",
    "kECDHe",
    "aECDH",
    "aDH",
    "kFZA",
    "aFZA",
    "eFZA",
    "FZA",
    "KRB5",
    "kKRB5",
    "aKRB5",
];

/// The TLS 1.3 suites OpenSSL knows, by the names `tls-ciphersuites` takes, with rustls's name
/// for those it implements (it lacks the CCM ones).
const TLS13: &[(&str, Option<&str>)] = &[
    ("TLS_AES_256_GCM_SHA384", Some("TLS13_AES_256_GCM_SHA384")),
    ("TLS_CHACHA20_POLY1305_SHA256", Some("TLS13_CHACHA20_POLY1305_SHA256")),
    ("TLS_AES_128_GCM_SHA256", Some("TLS13_AES_128_GCM_SHA256")),
    ("TLS_AES_128_CCM_SHA256", None),
    ("TLS_AES_128_CCM_8_SHA256", None),
];

/// What a cipher string selects: the suites to offer (by IANA name; `None` when the string is
/// empty, for rustls's defaults) and warnings for suites named that rustls lacks.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Choice {
    /// IANA names of the suites to offer.
    pub(crate) offer: Option<Vec<&'static str>>,
    /// Things worth a log line.
    pub(crate) warnings: Vec<String>,
}

impl Suite {
    /// Whether `word` is this suite's OpenSSL or IANA name.
    fn named_by(&self, word: &str) -> bool {
        word.eq_ignore_ascii_case(self.openssl) || word.eq_ignore_ascii_case(self.iana)
    }

    /// Whether `word` (one alias or a name) selects this suite; `None` for a word that is no
    /// alias (another suite's name, or nothing OpenSSL knows).
    fn selects(&self, word: &str) -> Option<bool> {
        if self.named_by(word) {
            return Some(true);
        }
        let (kx, au, enc, mac) = (self.kx, self.au, self.enc, self.mac);
        let anonymous = au == "NULL";
        let null = enc == "NULL";
        let aes = enc.starts_with("AES");
        let bits = if enc.ends_with("128") {
            "128"
        } else if enc.ends_with("256") || enc == "CHACHA20" {
            "256"
        } else {
            ""
        };
        Some(match word {
            "ALL" => !null,
            "COMPLEMENTOFALL" => null,
            "DEFAULT" => !null && !anonymous,
            "COMPLEMENTOFDEFAULT" => anonymous,
            "HIGH" => !null && enc != "3DES",
            "MEDIUM" => enc == "3DES",
            "kECDHE" | "kEECDH" | "ECDH" => kx == "ECDHE",
            "ECDHE" | "EECDH" => kx == "ECDHE" && !anonymous,
            "AECDH" => kx == "ECDHE" && anonymous,
            "kDHE" | "kEDH" | "DH" => kx == "DHE",
            "DHE" | "EDH" => kx == "DHE" && !anonymous,
            "ADH" => kx == "DHE" && anonymous,
            "kRSA" => kx == "RSA",
            "aRSA" => au == "RSA",
            "RSA" => kx == "RSA" || au == "RSA",
            "aECDSA" | "ECDSA" => au == "ECDSA",
            "aNULL" => anonymous,
            "eNULL" | "NULL" => null,
            "AES" => aes,
            "AES128" | "AES256" => aes && word.ends_with(bits) && !bits.is_empty(),
            "AESGCM" => enc.starts_with("AESGCM"),
            "CHACHA20" => enc == "CHACHA20",
            "CAMELLIA" => enc.starts_with("CAMELLIA"),
            "CAMELLIA128" | "CAMELLIA256" => enc.starts_with("CAMELLIA") && word.ends_with(bits),
            "3DES" => enc == "3DES",
            "SHA1" | "SHA" => mac == "SHA1",
            "SHA256" => mac == "SHA256",
            "SHA384" => mac == "SHA384",
            "AEAD" => mac == "AEAD",
            "TLSv1.2" => mac != "SHA1",
            "TLSv1.0" | "TLSv1" | "SSLv3" => mac == "SHA1",
            _ => return None,
        })
    }
}

/// Whether `word` is something OpenSSL's cipher strings know.
fn known(word: &str) -> bool {
    EMPTY_ALIASES.contains(&word) || SUITES.iter().any(|s| s.selects(word).is_some())
}

/// The supported suites, for error messages.
fn supported() -> String {
    SUITES.iter().filter(|s| s.rustls).map(|s| s.openssl).collect::<Vec<_>>().join(":")
}

/// Evaluates a `tls-ciphers` string.
///
/// # Errors
/// Words nothing knows, or a string that leaves nothing rustls implements.
pub(crate) fn tls12(list: &str) -> Result<Choice, String> {
    let items: Vec<&str> =
        list.split([':', ',', ' ', ';']).map(str::trim).filter(|i| !i.is_empty()).collect();
    if items.is_empty() {
        return Ok(Choice { offer: None, warnings: Vec::new() });
    }
    let mut active = vec![false; SUITES.len()];
    let mut killed = vec![false; SUITES.len()];
    let mut unknown = Vec::new();
    let mut named = Vec::new();
    for item in items {
        let (op, body) = match item.as_bytes()[0] {
            b'!' | b'-' | b'+' => (item.as_bytes()[0], &item[1..]),
            _ => (b' ', item),
        };
        if let Some(directive) = body.strip_prefix('@') {
            if !(directive.eq_ignore_ascii_case("STRENGTH") || directive.starts_with("SECLEVEL=")) {
                unknown.push(item.to_owned());
            }
            continue;
        }
        let words: Vec<&str> = body.split('+').filter(|w| !w.is_empty()).collect();
        if words.is_empty() || words.iter().any(|w| !known(w)) {
            unknown.push(item.to_owned());
            continue;
        }
        for (i, suite) in SUITES.iter().enumerate() {
            if !words.iter().all(|w| suite.selects(w) == Some(true)) {
                continue;
            }
            match op {
                b'!' => {
                    killed[i] = true;
                    active[i] = false;
                }
                b'-' => active[i] = false,
                b'+' => {}
                _ => {
                    if !killed[i] {
                        active[i] = true;
                        if !suite.rustls && words.len() == 1 && suite.named_by(words[0]) {
                            named.push(suite.openssl);
                        }
                    }
                }
            }
        }
    }
    if !unknown.is_empty() {
        return Err(format!(
            "unknown cipher string item(s): {} (ferrokey's TLS, rustls, offers {})",
            unknown.join(", "),
            supported()
        ));
    }
    let offer: Vec<&'static str> =
        SUITES.iter().zip(&active).filter(|(s, on)| **on && s.rustls).map(|(s, _)| s.iana).collect();
    if offer.is_empty() {
        return Err(format!(
            "'{list}' selects no cipher suite rustls implements (it has no CBC, RSA or DHE key exchange, 3DES, \
             Camellia or NULL suites, by design); ferrokey offers {}",
            supported()
        ));
    }
    let dropped: Vec<&str> = named
        .into_iter()
        .filter(|n| SUITES.iter().zip(&active).any(|(s, on)| *on && s.openssl == *n))
        .collect();
    let warnings = if dropped.is_empty() {
        Vec::new()
    } else {
        vec![format!(
            "tls-ciphers names {} which rustls does not implement (no CBC, RSA or DHE key exchange by design): \
             offering the rest",
            dropped.join(", ")
        )]
    };
    Ok(Choice { offer: Some(offer), warnings })
}

/// Evaluates a `tls-ciphersuites` string (TLS 1.3 suite names separated by `:`).
///
/// # Errors
/// A name nothing knows, or a list with nothing rustls implements.
pub(crate) fn tls13(list: &str) -> Result<Choice, String> {
    let items: Vec<&str> = list.split([':', ',', ' ']).map(str::trim).filter(|i| !i.is_empty()).collect();
    if items.is_empty() {
        return Ok(Choice { offer: None, warnings: Vec::new() });
    }
    let mut offer = Vec::new();
    let mut lacking = Vec::new();
    let mut unknown = Vec::new();
    for item in items {
        // OpenSSL's group words mean every suite here too (ferrokey has always taken them).
        if ["DEFAULT", "ALL", "HIGH"].iter().any(|k| item.eq_ignore_ascii_case(k)) {
            offer.extend(TLS13.iter().filter_map(|(_, r)| *r));
            continue;
        }
        let found = TLS13
            .iter()
            .find(|(n, r)| item.eq_ignore_ascii_case(n) || r.is_some_and(|r| item.eq_ignore_ascii_case(r)));
        match found {
            Some((_, Some(r))) => offer.push(*r),
            Some((n, None)) => lacking.push(*n),
            None => unknown.push(item),
        }
    }
    let names = || TLS13.iter().filter(|(_, r)| r.is_some()).map(|(n, _)| *n).collect::<Vec<_>>().join(":");
    if !unknown.is_empty() {
        return Err(format!(
            "unknown TLS 1.3 cipher suite(s): {} (rustls offers {})",
            unknown.join(", "),
            names()
        ));
    }
    if offer.is_empty() {
        return Err(format!(
            "'{list}' selects no TLS 1.3 suite rustls implements (it has no CCM suites); it offers {}",
            names()
        ));
    }
    let warnings = if lacking.is_empty() {
        Vec::new()
    } else {
        vec![format!(
            "tls-ciphersuites names {} which rustls does not implement: offering the rest",
            lacking.join(", ")
        )]
    };
    Ok(Choice { offer: Some(offer), warnings })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offered(list: &str) -> Vec<&'static str> {
        tls12(list).expect("valid").offer.expect("a selection")
    }

    #[test]
    fn openssl_strings_redis_users_write() {
        let all_six = offered("DEFAULT");
        assert_eq!(all_six.len(), 6);
        assert_eq!(offered("HIGH:!aNULL:!MD5"), all_six);
        assert_eq!(
            offered("ECDHE+AESGCM"),
            vec![
                "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            ]
        );
        assert_eq!(offered("kEECDH+aRSA+AES128").len(), 1, "AES128 GCM with RSA auth only");
        assert_eq!(
            offered("ALL:-CHACHA20:!ECDSA"),
            vec!["TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",]
        );
        // `!` is for good; `-` can be added back.
        assert_eq!(offered("ALL:!AES:AESGCM:CHACHA20").len(), 2);
        assert_eq!(offered("ALL:-AES:-CHACHA20:AESGCM").len(), 4);
        assert!(tls12("ALL:!AES:-CHACHA20:AESGCM").is_err());
        assert_eq!(offered("ECDHE-RSA-AES128-GCM-SHA256"), vec!["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]);
        assert_eq!(offered("@STRENGTH:HIGH:+CHACHA20:@SECLEVEL=2").len(), 6);
    }

    #[test]
    fn what_rustls_lacks_is_refused_or_warned() {
        let only_cbc = tls12("ECDHE-RSA-AES128-SHA:AES256-SHA").unwrap_err();
        assert!(
            only_cbc.contains("no CBC") && only_cbc.contains("ECDHE-RSA-AES128-GCM-SHA256"),
            "{only_cbc}"
        );
        assert!(tls12("3DES").is_err());
        let mixed = tls12("ECDHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES128-GCM-SHA256").unwrap();
        assert_eq!(mixed.offer.unwrap().len(), 1);
        assert!(mixed.warnings[0].contains("DHE-RSA-AES128-GCM-SHA256"), "{:?}", mixed.warnings);
        let typo = tls12("HIGH:ECDHE-RSA-AES128-GCM-SHA265").unwrap_err();
        assert!(typo.contains("ECDHE-RSA-AES128-GCM-SHA265"), "{typo}");
        assert_eq!(tls12("  ").unwrap(), Choice { offer: None, warnings: Vec::new() });
    }

    #[test]
    fn tls13_suites() {
        assert_eq!(
            tls13("TLS_CHACHA20_POLY1305_SHA256").unwrap().offer.unwrap(),
            vec!["TLS13_CHACHA20_POLY1305_SHA256"]
        );
        let ccm = tls13("TLS_AES_128_CCM_SHA256:TLS_AES_128_GCM_SHA256").unwrap();
        assert_eq!(ccm.offer.unwrap(), vec!["TLS13_AES_128_GCM_SHA256"]);
        assert_eq!(ccm.warnings.len(), 1);
        assert!(tls13("TLS_AES_128_CCM_8_SHA256").is_err());
        assert!(tls13("TLS_AES_512").is_err());
        assert_eq!(tls13("DEFAULT").unwrap().offer.unwrap().len(), 3);
    }
}
