//! Public profiles (what goes on chain) and DB-only extras (what never does),
//! built from bounded, validated text types.

use std::{fmt, str::FromStr};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::{HhNumber, Role, ValidationError, WalletAddress};

/// Defines a bounded text newtype: non-empty, at most `$max` characters, no
/// leading or trailing whitespace, and no control characters (except, where
/// `$multiline` is true, newlines and tabs).
macro_rules! bounded_text {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:literal, $multiline:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The most characters a value may have.
            pub const MAX_CHARS: usize = $max;

            /// Validates `value`.
            pub fn new(value: impl Into<String>) -> Result<Self, ValidationError> {
                let value = value.into();
                check_text($what, &value, $max, $multiline)?;
                Ok(Self(value))
            }

            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValidationError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::new(s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

fn check_text(
    what: &'static str,
    value: &str,
    max: usize,
    multiline: bool,
) -> Result<(), ValidationError> {
    if value.trim().is_empty() {
        return Err(ValidationError::new(what, value, "must not be empty"));
    }
    if value.trim() != value {
        return Err(ValidationError::new(
            what,
            value,
            "must not start or end with whitespace",
        ));
    }
    let count = value.chars().count();
    if count > max {
        return Err(ValidationError::new(
            what,
            value,
            format!("must be at most {max} characters, got {count}"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && !(multiline && (c == '\n' || c == '\t')))
    {
        return Err(ValidationError::new(
            what,
            value.escape_debug(),
            "must not contain control characters",
        ));
    }
    Ok(())
}

bounded_text!(
    /// A person's, center's or test's name: 1–128 characters on one line.
    Name, "name", 128, false
);
bounded_text!(
    /// A short label (gender, specialization, record type): 1–64 characters.
    Label, "label", 64, false
);
bounded_text!(
    /// One line of free text (hospital, postal address, location, contact):
    /// 1–256 characters.
    Line, "text line", 256, false
);
bounded_text!(
    /// A multi-line note (allergies, notes): 1–4096 characters; newlines and
    /// tabs allowed.
    Note, "note", 4096, true
);

/// An email address, syntax-checked (RFC 5321 lengths, a dotted domain of
/// letter/digit/hyphen labels, a dot-atom local part).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    /// Validates `value`.
    pub fn new(value: impl Into<String>) -> Result<Self, ValidationError> {
        let value = value.into();
        let err = |rule: &str| ValidationError::new("email", &value, rule);
        if value.len() > 254 {
            return Err(err("must be at most 254 bytes"));
        }
        let (local, domain) = value
            .rsplit_once('@')
            .ok_or_else(|| err("expected local@domain"))?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
        if !local_ok {
            return Err(err(
                "local part must be 1-64 letters, digits or !#$%&'*+-/=?^_`{|}~ in dot-separated atoms",
            ));
        }
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !domain_ok {
            return Err(err(
                "domain must be dot-separated labels of letters, digits and inner hyphens, with at least one dot",
            ));
        }
        Ok(Self(value))
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Email {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for Email {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<Email> for String {
    fn from(v: Email) -> String {
        v.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An ABO/Rh blood group: exactly one of A+, A-, B+, B-, AB+, AB-, O+, O-.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum BloodGroup {
    /// A+
    APos,
    /// A-
    ANeg,
    /// B+
    BPos,
    /// B-
    BNeg,
    /// AB+
    AbPos,
    /// AB-
    AbNeg,
    /// O+
    OPos,
    /// O-
    ONeg,
}

impl BloodGroup {
    /// Every blood group.
    pub const ALL: [BloodGroup; 8] = [
        BloodGroup::APos,
        BloodGroup::ANeg,
        BloodGroup::BPos,
        BloodGroup::BNeg,
        BloodGroup::AbPos,
        BloodGroup::AbNeg,
        BloodGroup::OPos,
        BloodGroup::ONeg,
    ];

    /// The conventional notation, e.g. `AB-`.
    pub fn as_str(self) -> &'static str {
        match self {
            BloodGroup::APos => "A+",
            BloodGroup::ANeg => "A-",
            BloodGroup::BPos => "B+",
            BloodGroup::BNeg => "B-",
            BloodGroup::AbPos => "AB+",
            BloodGroup::AbNeg => "AB-",
            BloodGroup::OPos => "O+",
            BloodGroup::ONeg => "O-",
        }
    }
}

impl FromStr for BloodGroup {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BloodGroup::ALL
            .into_iter()
            .find(|g| g.as_str() == s)
            .ok_or_else(|| {
                ValidationError::new(
                    "blood group",
                    s,
                    "expected exactly one of A+, A-, B+, B-, AB+, AB-, O+, O-",
                )
            })
    }
}

impl TryFrom<String> for BloodGroup {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<BloodGroup> for String {
    fn from(v: BloodGroup) -> String {
        v.as_str().to_owned()
    }
}

impl fmt::Display for BloodGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A date of birth: not in the future and not before 1900-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "NaiveDate", into = "NaiveDate")]
pub struct DateOfBirth(NaiveDate);

impl DateOfBirth {
    /// Validates `date` against `today`.
    pub fn new_at(date: NaiveDate, today: NaiveDate) -> Result<Self, ValidationError> {
        if date > today {
            return Err(ValidationError::new(
                "date of birth",
                date,
                format!("must not be in the future (today is {today})"),
            ));
        }
        let earliest = NaiveDate::from_ymd_opt(1900, 1, 1).unwrap_or(NaiveDate::MIN);
        if date < earliest {
            return Err(ValidationError::new(
                "date of birth",
                date,
                "must not be before 1900-01-01",
            ));
        }
        Ok(Self(date))
    }

    /// Validates `date` against today's UTC date.
    pub fn new(date: NaiveDate) -> Result<Self, ValidationError> {
        Self::new_at(date, chrono::Utc::now().date_naive())
    }

    /// The date.
    pub fn date(self) -> NaiveDate {
        self.0
    }
}

impl FromStr for DateOfBirth {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let date = NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .filter(|_| s.len() == 10)
            .ok_or_else(|| {
                ValidationError::new("date of birth", s, "expected a date as YYYY-MM-DD")
            })?;
        Self::new(date)
    }
}

impl TryFrom<NaiveDate> for DateOfBirth {
    type Error = ValidationError;
    fn try_from(d: NaiveDate) -> Result<Self, Self::Error> {
        Self::new(d)
    }
}

impl From<DateOfBirth> for NaiveDate {
    fn from(d: DateOfBirth) -> NaiveDate {
        d.0
    }
}

impl fmt::Display for DateOfBirth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%d"))
    }
}

/// A patient's public profile.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PatientProfile {
    /// The patient's HH number.
    pub hh: HhNumber,
    /// The wallet that owns this profile.
    pub wallet: WalletAddress,
    /// Full name.
    pub name: Name,
    /// Date of birth.
    pub date_of_birth: DateOfBirth,
    /// Gender, as the patient states it.
    pub gender: Label,
    /// Blood group.
    pub blood_group: BloodGroup,
    /// Home address.
    pub home_address: Line,
    /// Email address.
    pub email: Email,
}

/// A doctor's public profile.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DoctorProfile {
    /// The doctor's HH number.
    pub hh: HhNumber,
    /// The wallet that owns this profile.
    pub wallet: WalletAddress,
    /// Full name.
    pub name: Name,
    /// Specialization, e.g. `Cardiology`.
    pub specialization: Label,
    /// Hospital or practice.
    pub hospital: Line,
    /// Email address.
    pub email: Email,
}

/// A diagnostic center's public profile.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DiagnosticCenterProfile {
    /// The center's HH number.
    pub hh: HhNumber,
    /// The wallet that owns this profile.
    pub wallet: WalletAddress,
    /// The center's name.
    pub name: Name,
    /// Where the center is.
    pub location: Line,
    /// Email address.
    pub email: Email,
}

/// Any registered user's public profile.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "kebab-case")]
pub enum Profile {
    /// A patient.
    Patient(PatientProfile),
    /// A doctor.
    Doctor(DoctorProfile),
    /// A diagnostic center.
    DiagnosticCenter(DiagnosticCenterProfile),
}

impl Profile {
    /// The profile's HH number.
    pub fn hh(&self) -> HhNumber {
        match self {
            Profile::Patient(p) => p.hh,
            Profile::Doctor(p) => p.hh,
            Profile::DiagnosticCenter(p) => p.hh,
        }
    }

    /// The profile's role.
    pub fn role(&self) -> Role {
        match self {
            Profile::Patient(_) => Role::Patient,
            Profile::Doctor(_) => Role::Doctor,
            Profile::DiagnosticCenter(_) => Role::DiagnosticCenter,
        }
    }

    /// The wallet that owns the profile.
    pub fn wallet(&self) -> WalletAddress {
        match self {
            Profile::Patient(p) => p.wallet,
            Profile::Doctor(p) => p.wallet,
            Profile::DiagnosticCenter(p) => p.wallet,
        }
    }

    /// The display name.
    pub fn name(&self) -> &Name {
        match self {
            Profile::Patient(p) => &p.name,
            Profile::Doctor(p) => &p.name,
            Profile::DiagnosticCenter(p) => &p.name,
        }
    }
}

/// A phone number, normalized to `+` and 7–15 digits (E.164 length). Spaces,
/// hyphens, dots and parentheses are accepted as separators and dropped.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Validates and normalizes `value`.
    pub fn new(value: &str) -> Result<Self, ValidationError> {
        let rule = "expected an optional + and 7 to 15 digits, with optional spaces, hyphens, dots or parentheses";
        let body = value.strip_prefix('+').unwrap_or(value);
        let mut digits = String::with_capacity(16);
        for c in body.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err(ValidationError::new("phone number", value, rule)),
            }
        }
        if !(7..=15).contains(&digits.len()) {
            return Err(ValidationError::new("phone number", value, rule));
        }
        Ok(Self(format!("+{digits}")))
    }

    /// The normalized number, e.g. `+15551234567`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for PhoneNumber {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for PhoneNumber {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(&s)
    }
}

impl From<PhoneNumber> for String {
    fn from(v: PhoneNumber) -> String {
        v.0
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Data about a user that lives only in the database and never goes on
/// chain. Sync never overwrites it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ProfileExtras {
    /// Phone number.
    pub phone: Option<PhoneNumber>,
    /// Emergency contact (name and number).
    pub emergency_contact: Option<Line>,
    /// Known allergies.
    pub allergies: Option<Note>,
    /// Free notes.
    pub notes: Option<Note>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_bounded_and_clean() {
        assert!(Name::new("Asha Rao").is_ok());
        assert!(Name::new("x".repeat(128)).is_ok());
        let err = Name::new("x".repeat(129)).unwrap_err();
        assert!(err.rule.contains("at most 128"), "{err}");
        assert!(Name::new("").is_err());
        assert!(Name::new(" padded").is_err());
        assert!(Name::new("bell\u{7}").unwrap_err().rule.contains("control"));
        assert!(Name::new("two\nlines").is_err());
        assert!(Note::new("two\nlines").is_ok());
    }

    #[test]
    fn emails_are_syntax_checked() {
        for ok in [
            "a@b.co",
            "asha.rao+lab@clinic.example.org",
            "x_y@sub-domain.in",
        ] {
            assert!(Email::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a",
            "a@b",
            "@b.co",
            "a@.co",
            "a..b@c.co",
            "a@b..co",
            "a b@c.co",
            "a@-b.co",
            "a@b.co ",
        ] {
            assert!(Email::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn blood_groups_are_exactly_the_eight() {
        for g in BloodGroup::ALL {
            assert_eq!(g.as_str().parse::<BloodGroup>().unwrap(), g);
        }
        for bad in ["a+", "AB", "O", "0+", "A +", "B+ "] {
            assert!(bad.parse::<BloodGroup>().is_err(), "{bad}");
        }
    }

    #[test]
    fn dates_of_birth_are_not_in_the_future() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
        assert!(DateOfBirth::new_at(today, today).is_ok());
        let tomorrow = today.succ_opt().unwrap();
        let err = DateOfBirth::new_at(tomorrow, today).unwrap_err();
        assert!(err.rule.contains("future"));
        assert!(
            DateOfBirth::new_at(NaiveDate::from_ymd_opt(1899, 12, 31).unwrap(), today).is_err()
        );
        assert!("1990-13-01".parse::<DateOfBirth>().is_err());
        assert_eq!(
            "1990-02-03".parse::<DateOfBirth>().unwrap().to_string(),
            "1990-02-03"
        );
    }

    #[test]
    fn phone_numbers_normalize() {
        assert_eq!(
            PhoneNumber::new("+1 (555) 123-4567").unwrap().as_str(),
            "+15551234567"
        );
        assert!(PhoneNumber::new("12345").is_err());
        assert!(PhoneNumber::new("+1 555 CALL NOW").is_err());
    }
}
