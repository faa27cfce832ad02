//! Typed ids: a server id and a user id are both short strings, and a function that takes one must not be
//! handed the other. On the wire and in the database they are plain strings (`serde(transparent)`).

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                Self(id)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self(id.to_owned())
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

id_type!(
    /// A game server's id (see [`crate::gameserver::server_id`]): a hostname label and a Kubernetes name.
    ServerId
);
id_type!(
    /// An account's id.
    UserId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_plain_strings_on_the_wire() {
        let id = ServerId::new("abc-de-123456");
        assert_eq!(serde_json::to_string(&id).expect("serialize"), r#""abc-de-123456""#);
        assert_eq!(serde_json::from_str::<ServerId>(r#""x""#).expect("parse"), ServerId::from("x"));
        assert_eq!(id.to_string(), "abc-de-123456");
        assert!(id == "abc-de-123456");
    }
}
