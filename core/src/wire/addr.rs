//! Socket addresses on the wire: the IP address's bytes then the port, big-endian, as one byte
//! string (6 bytes for IPv4, 18 for IPv6). As small as serde's enum form, and far less code on a
//! microcontroller. IPv6 flow info and scope id do not travel, as with serde's own encoding.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

/// Writes `addr` as a byte string.
pub fn serialize<S: Serializer>(addr: &SocketAddr, s: S) -> Result<S::Ok, S::Error> {
    let [p0, p1] = addr.port().to_be_bytes();
    match addr.ip() {
        IpAddr::V4(ip) => {
            let [a, b, c, d] = ip.octets();
            s.serialize_bytes(&[a, b, c, d, p0, p1])
        }
        IpAddr::V6(ip) => {
            let [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p] = ip.octets();
            s.serialize_bytes(&[a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, p0, p1])
        }
    }
}

/// Reads an address written by [`serialize`]; any other length is an error.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let bytes = <&'de [u8]>::deserialize(d)?;
    if let Ok([a, b, c, d, p0, p1]) = <[u8; 6]>::try_from(bytes) {
        return Ok(SocketAddr::from((
            Ipv4Addr::new(a, b, c, d),
            u16::from_be_bytes([p0, p1]),
        )));
    }
    let v6 = bytes.split_first_chunk::<16>().and_then(|(ip, port)| {
        let port = <[u8; 2]>::try_from(port).ok()?;
        Some(SocketAddr::from((
            Ipv6Addr::from(*ip),
            u16::from_be_bytes(port),
        )))
    });
    v6.ok_or_else(|| D::Error::custom("a socket address is 6 or 18 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;

    #[derive(Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Wrap(#[serde(with = "super")] SocketAddr);

    #[test]
    fn round_trips_both_families_in_their_bytes() {
        for (addr, len) in [
            ("10.1.2.3:7946", 1 + 6),
            ("[2001:db8::17]:65535", 1 + 18),
            ("0.0.0.0:0", 1 + 6),
        ] {
            let w = Wrap(addr.parse().unwrap());
            let mut buf = [0u8; 32];
            let bytes = postcard::to_slice(&w, &mut buf).unwrap();
            assert_eq!(bytes.len(), len, "{addr}");
            assert_eq!(postcard::from_bytes::<Wrap>(bytes).unwrap(), w);
        }
    }

    #[test]
    fn other_lengths_are_refused() {
        for len in [0usize, 4, 5, 7, 16, 17, 19, 40] {
            let mut bytes = [7u8; 41];
            bytes[0] = len as u8;
            assert!(
                postcard::from_bytes::<Wrap>(&bytes[..1 + len]).is_err(),
                "{len} bytes"
            );
        }
    }
}
