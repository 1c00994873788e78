//! The parameters a plugin is given at `init`.

use std::str::FromStr;

use crate::Error;

/// Name/value parameters from the topic binding or the consumer's fetch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    pairs: Vec<(String, String)>,
}

impl Config {
    /// Wraps the pairs `init` received.
    pub fn new(pairs: Vec<(String, String)>) -> Config {
        Config { pairs }
    }

    /// The value of the last parameter called `name`; later pairs override earlier ones.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Like [`get`](Self::get), but a missing parameter is an
    /// [`Error::Config`] that names it.
    pub fn require(&self, name: &str) -> Result<&str, Error> {
        self.get(name)
            .ok_or_else(|| Error::Config(format!("missing parameter `{name}`")))
    }

    /// Parses parameter `name`; `Ok(None)` when it is absent, an [`Error::Config`] naming
    /// the parameter and its value when it does not parse.
    pub fn parse<T: FromStr>(&self, name: &str) -> Result<Option<T>, Error> {
        match self.get(name) {
            None => Ok(None),
            Some(raw) => raw.parse().map(Some).map_err(|_| {
                Error::Config(format!(
                    "parameter `{name}` = `{raw}` is not a valid {}",
                    std::any::type_name::<T>()
                ))
            }),
        }
    }

    /// Every pair, in the order given.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}
