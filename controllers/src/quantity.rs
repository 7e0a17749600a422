//! `resource.Quantity` sums and their canonical text, as Go's
//! `Quantity.Add` + `Quantity.String()` produce them: the sum keeps the
//! format (DecimalSI, BinarySI, DecimalExponent) of its first operand, and the
//! text is the canonical form of that format (`1500m`, `2`, `8Gi`, `1k`).

use flotilla_api::quantity::{self, Exact};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// A quantity's format (Go `resource.Format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `m`, ``, `k`, `M`, ... suffixes.
    DecimalSi,
    /// `Ki`, `Mi`, ... suffixes.
    BinarySi,
    /// `e3` style exponents.
    DecimalExponent,
}

/// The format a quantity string was written in.
pub fn format_of(s: &str) -> Format {
    let s = s.trim();
    let suffix = s.trim_start_matches(|c: char| c.is_ascii_digit() || matches!(c, '.' | '+' | '-'));
    if suffix.ends_with('i') {
        Format::BinarySi
    } else if suffix.starts_with(['e', 'E']) {
        Format::DecimalExponent
    } else {
        Format::DecimalSi
    }
}

/// A value with its format, for summing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Value {
    /// Exact value.
    pub exact: Exact,
    /// Format kept by sums.
    pub format: Format,
}

impl Value {
    /// Zero in `format`.
    pub fn zero(format: Format) -> Self {
        Value {
            exact: Exact { num: 0, den: 1 },
            format,
        }
    }

    /// An integer in `format` (Go `resource.NewQuantity`).
    pub fn int(v: i128, format: Format) -> Self {
        Value {
            exact: Exact { num: v, den: 1 },
            format,
        }
    }

    /// Thousandths in DecimalSI (Go `resource.NewMilliQuantity`).
    pub fn milli(v: i128) -> Self {
        Value {
            exact: Exact { num: v, den: 1000 },
            format: Format::DecimalSi,
        }
    }

    /// Parses a quantity, `None` if it is malformed.
    pub fn parse(q: &Quantity) -> Option<Self> {
        Some(Value {
            exact: quantity::of(q)?,
            format: format_of(&q.0),
        })
    }

    /// `self + other`, keeping `self`'s format.
    pub fn plus(self, other: Value) -> Value {
        let (a, b) = (self.exact, other.exact);
        let g = gcd(a.den, b.den).max(1);
        let den = a.den / g * b.den;
        let num = a
            .num
            .saturating_mul(den / a.den)
            .saturating_add(b.num.saturating_mul(den / b.den));
        Value {
            exact: reduce(Exact { num, den }),
            format: self.format,
        }
    }

    /// The larger of two (Go `SetMaxResource` keeps the larger value).
    pub fn max(self, other: Value) -> Value {
        if other.exact.cmp_exact(self.exact).is_gt() {
            other
        } else {
            self
        }
    }

    /// Canonical text (Go `Quantity.String()`).
    pub fn canonical(self) -> String {
        canonical(self.exact, self.format)
    }

    /// As a [`Quantity`].
    pub fn quantity(self) -> Quantity {
        Quantity(self.canonical())
    }
}

fn gcd(mut a: i128, mut b: i128) -> i128 {
    a = a.abs();
    b = b.abs();
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn reduce(e: Exact) -> Exact {
    let g = gcd(e.num, e.den).max(1);
    Exact {
        num: e.num / g,
        den: e.den / g,
    }
}

const DECIMAL_SUFFIXES: [(i32, &str); 10] = [
    (-9, "n"),
    (-6, "u"),
    (-3, "m"),
    (0, ""),
    (3, "k"),
    (6, "M"),
    (9, "G"),
    (12, "T"),
    (15, "P"),
    (18, "E"),
];

/// Canonical text of `e` in `format` (Go `CanonicalizeBytes`): values below
/// 1024 in magnitude or fractional fall back from BinarySI to DecimalSI; the
/// mantissa is an integer with the largest exponent (a multiple of 3, or of
/// 1024 for BinarySI) that keeps it exact; precision beyond nano rounds up.
pub fn canonical(e: Exact, format: Format) -> String {
    if e.num == 0 {
        return "0".into();
    }
    let mut format = format;
    if format == Format::BinarySi {
        let whole = e.num % e.den == 0;
        let small = e.num.abs() < 1024 * e.den;
        if small || !whole {
            format = Format::DecimalSi;
        } else {
            let mut v = e.num / e.den;
            let mut exp = 0usize;
            while v % 1024 == 0 && exp < 6 {
                v /= 1024;
                exp += 1;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][exp];
            return format!("{v}{suffix}");
        }
    }
    // value in nanos, rounded up (away from zero for positives, as Go rounds up)
    let scaled = e.num.saturating_mul(1_000_000_000);
    let mut n = scaled / e.den;
    if scaled % e.den != 0 && scaled > 0 {
        n += 1;
    }
    let mut exp: i32 = -9;
    while n % 1000 == 0 && exp < 18 {
        n /= 1000;
        exp += 3;
    }
    match format {
        Format::DecimalExponent => {
            if exp == 0 {
                format!("{n}")
            } else {
                format!("{n}e{exp}")
            }
        }
        _ => {
            let suffix = DECIMAL_SUFFIXES
                .iter()
                .find(|(x, _)| *x == exp)
                .map_or("", |(_, s)| s);
            format!("{n}{suffix}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Value {
        Value::parse(&Quantity(s.into())).unwrap()
    }

    #[test]
    fn canonical_forms() {
        assert_eq!(Value::milli(1500).canonical(), "1500m");
        assert_eq!(Value::milli(2000).canonical(), "2");
        assert_eq!(Value::milli(0).canonical(), "0");
        assert_eq!(Value::int(1000, Format::DecimalSi).canonical(), "1k");
        assert_eq!(Value::int(110, Format::DecimalSi).canonical(), "110");
        assert_eq!(Value::int(1536, Format::BinarySi).canonical(), "1536");
        assert_eq!(Value::int(1000, Format::BinarySi).canonical(), "1k");
        assert_eq!(
            Value::int(128 * 1024 * 1024, Format::BinarySi).canonical(),
            "128Mi"
        );
        assert_eq!(q("4").plus(q("4")).canonical(), "8");
        assert_eq!(q("8Gi").plus(q("8Gi")).canonical(), "16Gi");
        assert_eq!(q("8Gi").plus(q("512Mi")).canonical(), "8704Mi");
        assert_eq!(q("8G").plus(q("1Gi")).canonical(), "9073741824");
        assert_eq!(q("500m").plus(q("250m")).canonical(), "750m");
        assert_eq!(q("1e3").plus(q("1e3")).canonical(), "2e3");
        assert_eq!(q("100m").max(q("1")).canonical(), "1");
    }
}
