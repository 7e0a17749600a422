//! Kubernetes `resource.Quantity` arithmetic needed by validation and the
//! replica estimator: exact parsing into a rational number and the rounding
//! of `Quantity.Value()` / `Quantity.MilliValue()` (both round up).

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// A quantity as an exact fraction `num / den` (den > 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exact {
    /// Numerator.
    pub num: i128,
    /// Denominator.
    pub den: i128,
}

impl Exact {
    /// `Quantity.Value()`: the value rounded up to an integer.
    pub fn value(self) -> i128 {
        div_ceil(self.num, self.den)
    }

    /// `Quantity.MilliValue()`: the value in thousandths, rounded up.
    pub fn milli_value(self) -> i128 {
        div_ceil(self.num.saturating_mul(1000), self.den)
    }

    /// Compares two quantities exactly.
    pub fn cmp_exact(self, other: Exact) -> std::cmp::Ordering {
        (self.num.saturating_mul(other.den)).cmp(&other.num.saturating_mul(self.den))
    }
}

fn div_ceil(a: i128, b: i128) -> i128 {
    let q = a / b;
    if (a % b != 0) && ((a > 0) == (b > 0)) {
        q + 1
    } else {
        q
    }
}

/// Parses a quantity string (`<sign><number><suffix>`, suffixes `n u m k M G
/// T P E`, `Ki Mi Gi Ti Pi Ei`, or a decimal exponent `e<n>`/`E<n>`).
pub fn parse(s: &str) -> Option<Exact> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let (neg, digits) = match number.as_bytes().first() {
        Some(b'-') => (true, &number[1..]),
        Some(b'+') => (false, &number[1..]),
        _ => (false, number),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().chain(frac.bytes()).all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let scale = 10i128.checked_pow(u32::try_from(frac.len()).ok()?)?;
    let mut num: i128 = format!("{int}{frac}").parse().ok()?;
    let mut den: i128 = scale;
    let pow10 = |e: u32| 10i128.checked_pow(e);
    let (mul, div): (i128, i128) = match suffix {
        "" => (1, 1),
        "n" => (1, 1_000_000_000),
        "u" => (1, 1_000_000),
        "m" => (1, 1000),
        "k" => (1000, 1),
        "M" => (pow10(6)?, 1),
        "G" => (pow10(9)?, 1),
        "T" => (pow10(12)?, 1),
        "P" => (pow10(15)?, 1),
        "E" => (pow10(18)?, 1),
        "Ki" => (1 << 10, 1),
        "Mi" => (1 << 20, 1),
        "Gi" => (1 << 30, 1),
        "Ti" => (1 << 40, 1),
        "Pi" => (1 << 50, 1),
        "Ei" => (1 << 60, 1),
        e if e.starts_with(['e', 'E']) => {
            let exp: i32 = e[1..].parse().ok()?;
            if exp >= 0 {
                (pow10(exp.unsigned_abs())?, 1)
            } else {
                (1, pow10(exp.unsigned_abs())?)
            }
        }
        _ => return None,
    };
    num = num.checked_mul(mul)?;
    den = den.checked_mul(div)?;
    if neg {
        num = -num;
    }
    Some(Exact { num, den })
}

/// Parses a [`Quantity`].
pub fn of(q: &Quantity) -> Option<Exact> {
    parse(&q.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_up() {
        let v = |s: &str| parse(s).map(|e| (e.value(), e.milli_value()));
        assert_eq!(v("1"), Some((1, 1000)));
        assert_eq!(v("100m"), Some((1, 100)));
        assert_eq!(v("1.5"), Some((2, 1500)));
        assert_eq!(v("1Ki"), Some((1024, 1_024_000)));
        assert_eq!(v("64Mi"), Some((67_108_864, 67_108_864_000)));
        assert_eq!(v("2G"), Some((2_000_000_000, 2_000_000_000_000)));
        assert_eq!(v("1n"), Some((1, 1)));
        assert_eq!(v("1e3"), Some((1000, 1_000_000)));
        assert_eq!(v("-1"), Some((-1, -1000)));
        assert_eq!(
            v("9223372036854775807"),
            Some((i128::from(i64::MAX), i128::from(i64::MAX) * 1000))
        );
        assert_eq!(v("1x"), None);
        assert_eq!(v(""), None);
        assert_eq!(v("."), None);
    }

    #[test]
    fn exact_comparison() {
        let a = parse("1Gi").unwrap();
        let b = parse("1024Mi").unwrap();
        assert_eq!(a.cmp_exact(b), std::cmp::Ordering::Equal);
        assert_eq!(
            parse("500m").unwrap().cmp_exact(parse("1").unwrap()),
            std::cmp::Ordering::Less
        );
    }
}
