//! The two languages of every screen: Romanian (the default) and English.

use std::fmt;
use std::str::FromStr;

/// A language Dispecer speaks to people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Language {
    /// Romanian, the city's default.
    Ro,
    /// English.
    En,
}

impl Language {
    /// The BCP 47 code.
    pub fn code(self) -> &'static str {
        match self {
            Language::Ro => "ro",
            Language::En => "en",
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Language {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ro" => Ok(Language::Ro),
            "en" => Ok(Language::En),
            other => Err(format!(
                "unknown language {other:?} (expected \"ro\" or \"en\")"
            )),
        }
    }
}

/// A text in both languages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Localized {
    /// Romanian.
    pub ro: String,
    /// English.
    pub en: String,
}

impl Localized {
    /// The text in `lang`.
    pub fn get(&self, lang: Language) -> &str {
        match lang {
            Language::Ro => &self.ro,
            Language::En => &self.en,
        }
    }
}
