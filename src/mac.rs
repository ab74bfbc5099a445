//! Hardware addresses: the `aa:bb:cc:dd:ee:ff` form and the original's
//! `U:<text>` form, which derives a stable, locally administered address.

use std::fmt;
use std::str::FromStr;

use md5::{Digest, Md5};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// `02:` then the first five bytes of MD5 of `<text>\n` (the script ran
    /// `echo "$text" | md5sum`, hence the newline).
    pub fn from_text(text: &str) -> Mac {
        let digest = Md5::new().chain_update(text.as_bytes()).chain_update(b"\n").finalize();
        let mut mac = [0x02, 0, 0, 0, 0, 0];
        mac[1..].copy_from_slice(&digest[..5]);
        Mac(mac)
    }

    /// The `[mac]` part of the grammar: a literal address or `U:<text>`.
    pub fn parse_arg(arg: &str) -> Result<Mac, String> {
        match arg.strip_prefix("U:") {
            Some(text) => Ok(Mac::from_text(text)),
            None => {
                let mac: Mac = arg.parse().map_err(|_| format!("invalid MAC address '{arg}'"))?;
                if mac.0[0] & 1 == 1 {
                    return Err(format!("MAC address {arg} is a multicast address"));
                }
                if mac.0 == [0; 6] {
                    return Err(format!("MAC address {arg} is all zeros"));
                }
                Ok(mac)
            }
        }
    }
}

impl FromStr for Mac {
    type Err = ();

    /// Six hex octets separated by `:` (or `-`), any case.
    fn from_str(s: &str) -> Result<Mac, ()> {
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(());
        }
        let mut mac = [0u8; 6];
        for (byte, part) in mac.iter_mut().zip(parts) {
            if part.is_empty() || part.len() > 2 {
                return Err(());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| ())?;
        }
        Ok(Mac(mac))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

/// In records: the `aa:bb:cc:dd:ee:ff` text.
impl serde::Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Mac {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Mac, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(|()| serde::de::Error::custom(format!("invalid MAC address '{text}'")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u_form_matches_the_original() {
        assert_eq!(Mac::from_text("myhost.foo.com").to_string(), "02:72:6c:cd:9b:8d");
    }

    #[test]
    fn literal_any_case() {
        assert_eq!(Mac::parse_arg("02:AB:cd:00:11:2").unwrap().to_string(), "02:ab:cd:00:11:02");
    }

    #[test]
    fn refuses_bad_and_multicast() {
        assert!(Mac::parse_arg("02:ab:cd").is_err());
        assert!(Mac::parse_arg("zz:ab:cd:00:11:22").is_err());
        assert_eq!(
            Mac::parse_arg("01:00:5e:00:00:01").unwrap_err(),
            "MAC address 01:00:5e:00:00:01 is a multicast address"
        );
    }
}
