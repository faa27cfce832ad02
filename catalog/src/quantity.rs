//! Kubernetes resource quantities (`2`, `500m`, `4Gi`, `1.5G`) for plan CPU, memory and storage.
//!
//! Plans are written the way Kubernetes takes them, because on a cluster they become container requests and
//! PersistentVolumeClaim sizes verbatim. The parsed value is kept beside the original text so the local driver
//! and the UI can do arithmetic and display without reparsing, and so the text reaches Kubernetes unchanged.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a quantity did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("is empty")]
    Empty,
    #[error("`{0}` is not a Kubernetes quantity (expected e.g. `2`, `500m`, `4Gi`)")]
    Syntax(String),
    #[error("`{0}` must be greater than zero")]
    NotPositive(String),
    #[error("`{0}` is not a whole number of {1}")]
    Fractional(String, &'static str),
    #[error("`{0}` is too large")]
    TooLarge(String),
}

/// A CPU quantity, held in millicores (`"2"` = 2000, `"500m"` = 500).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cpu {
    text: String,
    millicores: u64,
}

/// A memory or storage quantity, held in bytes (`"4Gi"` = 4 × 2³⁰).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ByteSize {
    text: String,
    bytes: u64,
}

impl Cpu {
    /// Parses a CPU quantity; it must come to a whole, positive number of millicores.
    pub fn parse(text: &str) -> Result<Self, QuantityError> {
        let millicores = parse_scaled(text, 1000)?.whole(text, "millicores")?;
        positive(text, millicores).map(|millicores| Self { text: text.to_owned(), millicores })
    }

    /// The quantity as written, for Kubernetes.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn millicores(&self) -> u64 {
        self.millicores
    }
}

impl ByteSize {
    /// Parses a memory or storage quantity; it must come to a whole, positive number of bytes.
    pub fn parse(text: &str) -> Result<Self, QuantityError> {
        let bytes = parse_scaled(text, 1)?.whole(text, "bytes")?;
        positive(text, bytes).map(|bytes| Self { text: text.to_owned(), bytes })
    }

    /// The quantity as written, for Kubernetes.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Whole mebibytes, rounded down (what a JVM `-Xmx` or a container limit in MiB wants).
    pub fn mebibytes(&self) -> u64 {
        self.bytes >> 20
    }
}

/// A byte count as people read it (`3 MiB`, `1.5 KiB`, `0 B`): what the pages show for sizes.
pub fn bytes_text(bytes: u64) -> String {
    ByteSize::parse(&bytes.to_string()).map_or_else(|_| format!("{bytes} B"), |size| size.to_string())
}

fn positive(text: &str, value: u64) -> Result<u64, QuantityError> {
    if value == 0 { Err(QuantityError::NotPositive(text.to_owned())) } else { Ok(value) }
}

/// `value / 10^scale` in the requested unit, kept exact so `0.5` CPU is 500 millicores with no float rounding.
struct Scaled {
    numerator: u128,
    denominator: u128,
}

impl Scaled {
    fn whole(&self, text: &str, unit: &'static str) -> Result<u64, QuantityError> {
        if !self.numerator.is_multiple_of(self.denominator) {
            return Err(QuantityError::Fractional(text.to_owned(), unit));
        }
        u64::try_from(self.numerator / self.denominator).map_err(|_| QuantityError::TooLarge(text.to_owned()))
    }
}

/// Parses `<decimal><suffix>` and expresses it in units of `1/unit_per_one` (1000 for millicores, 1 for bytes).
fn parse_scaled(text: &str, unit_per_one: u128) -> Result<Scaled, QuantityError> {
    if text.is_empty() {
        return Err(QuantityError::Empty);
    }
    let syntax = || QuantityError::Syntax(text.to_owned());
    let too_large = || QuantityError::TooLarge(text.to_owned());

    let number_end = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, suffix) = text.split_at(number_end);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return Err(syntax());
    }

    // (multiplier, divisor) of the suffix relative to one unit.
    let (multiplier, divisor): (u128, u128) = match suffix {
        "" => (1, 1),
        "m" => (1, 1000),
        "k" => (1_000, 1),
        "M" => (1_000_000, 1),
        "G" => (1_000_000_000, 1),
        "T" => (1_000_000_000_000, 1),
        "P" => (1_000_000_000_000_000, 1),
        "Ki" => (1 << 10, 1),
        "Mi" => (1 << 20, 1),
        "Gi" => (1 << 30, 1),
        "Ti" => (1 << 40, 1),
        "Pi" => (1 << 50, 1),
        _ => return Err(syntax()),
    };

    if fraction.len() > 18 {
        return Err(syntax());
    }
    let digits: u128 = format!("{whole}{fraction}").parse().map_err(|_| too_large())?;
    let fraction_scale = 10u128.pow(fraction.len() as u32);
    let numerator = digits.checked_mul(multiplier).and_then(|n| n.checked_mul(unit_per_one)).ok_or_else(too_large)?;
    Ok(Scaled { numerator, denominator: fraction_scale * divisor })
}

impl TryFrom<String> for Cpu {
    type Error = QuantityError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl TryFrom<String> for ByteSize {
    type Error = QuantityError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<Cpu> for String {
    fn from(cpu: Cpu) -> Self {
        cpu.text
    }
}

impl From<ByteSize> for String {
    fn from(size: ByteSize) -> Self {
        size.text
    }
}

/// For people: `2 vCPU`, `0.5 vCPU`.
impl fmt::Display for Cpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.millicores / 1000;
        match self.millicores % 1000 {
            0 => write!(f, "{whole} vCPU"),
            rest => {
                let fraction = format!("{rest:03}");
                write!(f, "{whole}.{} vCPU", fraction.trim_end_matches('0'))
            }
        }
    }
}

/// For people, in the largest binary unit that keeps one decimal: `4 GiB`, `1.5 GiB`, `512 MiB`.
impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 4] = [("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
        for (name, size) in UNITS {
            if self.bytes >= size {
                let tenths = self.bytes * 10 / size;
                return if tenths.is_multiple_of(10) {
                    write!(f, "{} {name}", tenths / 10)
                } else {
                    write!(f, "{}.{} {name}", tenths / 10, tenths % 10)
                };
            }
        }
        write!(f, "{} B", self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_accepts_cores_fractions_and_millicores() {
        for (text, millicores) in [("2", 2000), ("0.5", 500), ("500m", 500), ("1.25", 1250), ("3", 3000)] {
            assert_eq!(Cpu::parse(text).map(|c| c.millicores()), Ok(millicores), "{text}");
        }
    }

    #[test]
    fn cpu_rejects_garbage_zero_and_sub_millicore() {
        assert_eq!(Cpu::parse(""), Err(QuantityError::Empty));
        assert!(matches!(Cpu::parse("two"), Err(QuantityError::Syntax(_))));
        assert!(matches!(Cpu::parse("2 cores"), Err(QuantityError::Syntax(_))));
        assert!(matches!(Cpu::parse("-1"), Err(QuantityError::Syntax(_))));
        assert!(matches!(Cpu::parse("1.2.3"), Err(QuantityError::Syntax(_))));
        assert!(matches!(Cpu::parse("."), Err(QuantityError::Syntax(_))));
        assert!(matches!(Cpu::parse("0"), Err(QuantityError::NotPositive(_))));
        assert!(matches!(Cpu::parse("0.0005"), Err(QuantityError::Fractional(..))));
    }

    #[test]
    fn bytes_accept_binary_and_decimal_suffixes() {
        for (text, bytes) in [
            ("2Gi", 2 << 30),
            ("512Mi", 512 << 20),
            ("1.5Gi", 3 << 29),
            ("1G", 1_000_000_000),
            ("10k", 10_000),
            ("4096", 4096),
            ("1Ti", 1 << 40),
        ] {
            assert_eq!(ByteSize::parse(text).map(|b| b.bytes()), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn bytes_reject_unknown_suffix_millis_and_overflow() {
        assert!(matches!(ByteSize::parse("2GB"), Err(QuantityError::Syntax(_))));
        assert!(matches!(ByteSize::parse("2gi"), Err(QuantityError::Syntax(_))));
        assert!(matches!(ByteSize::parse("Gi"), Err(QuantityError::Syntax(_))));
        assert!(matches!(ByteSize::parse("1500m"), Err(QuantityError::Fractional(..))));
        assert!(matches!(ByteSize::parse("0Gi"), Err(QuantityError::NotPositive(_))));
        assert!(matches!(ByteSize::parse("99999999999999999999Pi"), Err(QuantityError::TooLarge(_))));
    }

    #[test]
    fn display_is_for_people_and_serde_keeps_the_kubernetes_text() {
        assert_eq!(Cpu::parse("2").map(|c| c.to_string()), Ok("2 vCPU".into()));
        assert_eq!(Cpu::parse("500m").map(|c| c.to_string()), Ok("0.5 vCPU".into()));
        assert_eq!(Cpu::parse("1250m").map(|c| c.to_string()), Ok("1.25 vCPU".into()));
        assert_eq!(ByteSize::parse("4Gi").map(|b| b.to_string()), Ok("4 GiB".into()));
        assert_eq!(ByteSize::parse("1536Mi").map(|b| b.to_string()), Ok("1.5 GiB".into()));
        assert_eq!(ByteSize::parse("256Mi").map(|b| b.to_string()), Ok("256 MiB".into()));

        let size = ByteSize::parse("10Gi").expect("valid");
        let json = serde_json::to_string(&size).expect("serializes");
        assert_eq!(json, "\"10Gi\"");
        assert_eq!(serde_json::from_str::<ByteSize>(&json).ok(), Some(size));
        assert!(serde_json::from_str::<Cpu>("\"lots\"").is_err());
    }
}
