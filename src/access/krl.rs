//! OpenSSH key revocation lists (PROTOCOL.krl): a writer for the one shape we need, a
//! certificate section per CA listing revoked serial numbers, which sshd's `RevokedKeys` and
//! `ssh-keygen -Q` read. No crate writes this format; it is a header and length-prefixed
//! sections, written here by hand and checked against `ssh-keygen -Q` in the tests.

use std::collections::BTreeMap;

/// "SSHKRL\n\0"
const KRL_MAGIC: u64 = 0x5353_484b_524c_0a00;
const KRL_FORMAT_VERSION: u32 = 1;
const KRL_SECTION_CERTIFICATES: u8 = 1;
const KRL_SECTION_CERT_SERIAL_LIST: u8 = 0x20;

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    // Every field here is far below 4 GiB: a CA key blob, a list of serials.
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

/// A KRL revoking `serials` of each CA (its public key in SSH wire format), numbered
/// `version` (it increases with each rewrite) and dated `generated` (seconds since the epoch).
pub fn write(revoked: &BTreeMap<Vec<u8>, Vec<u64>>, version: u64, generated: u64) -> Vec<u8> {
    let mut out = Vec::new();
    put_u64(&mut out, KRL_MAGIC);
    out.extend_from_slice(&KRL_FORMAT_VERSION.to_be_bytes());
    put_u64(&mut out, version);
    put_u64(&mut out, generated);
    put_u64(&mut out, 0); // flags
    put_string(&mut out, b""); // reserved
    put_string(&mut out, b"paragon-admin access");
    for (ca, serials) in revoked {
        let mut serials = serials.clone();
        serials.sort_unstable();
        serials.dedup();
        if serials.is_empty() {
            continue;
        }
        let mut list = Vec::new();
        for s in serials {
            put_u64(&mut list, s);
        }
        let mut section = Vec::new();
        put_string(&mut section, ca);
        put_string(&mut section, b""); // reserved
        section.push(KRL_SECTION_CERT_SERIAL_LIST);
        put_string(&mut section, &list);
        out.push(KRL_SECTION_CERTIFICATES);
        put_string(&mut out, &section);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_krl_is_the_header_alone() {
        let k = write(&BTreeMap::new(), 3, 9);
        assert_eq!(&k[..8], b"SSHKRL\n\0");
        assert_eq!(&k[8..12], &[0, 0, 0, 1]);
        assert_eq!(
            k.len(),
            8 + 4 + 8 + 8 + 8 + 4 + 4 + "paragon-admin access".len()
        );
    }

    #[test]
    fn serials_are_listed_once_in_order_under_their_ca() {
        let mut m = BTreeMap::new();
        m.insert(b"ca".to_vec(), vec![5, 2, 5]);
        let k = write(&m, 1, 0);
        let tail = &k[k.len() - (4 + 16)..];
        assert_eq!(&tail[..4], &[0, 0, 0, 16]);
        assert_eq!(&tail[4..12], &2u64.to_be_bytes());
        assert_eq!(&tail[12..], &5u64.to_be_bytes());
    }
}
