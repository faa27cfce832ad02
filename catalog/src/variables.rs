//! Startup variables: the typed settings a customer picks for their server (Minecraft version, max players,
//! MOTD, …), each with a default and a rule, filled into a game's command line, environment, install steps and
//! config files through `{KEY}` placeholders (see [`fill`]).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// One startup variable of a game, as the catalog defines it. Public: the create form and the settings page show
/// the rule next to the field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variable {
    /// Upper-case letters, digits and '_' (`MAX_PLAYERS`): the placeholder's name and the API's key.
    pub key: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    pub rule: Rule,
    /// The value a new server gets (for a number bounded by the plan, at most the plan's bound).
    pub default: String,
    /// Whether the customer may change it; an operator's fixed setting otherwise.
    pub editable: bool,
    /// Whether changing it installs the game's files again (a new game version).
    pub reinstall: bool,
}

/// What values a variable takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Rule {
    /// Free text of at most `max_len` characters, matching `pattern` (a regular expression over the whole value)
    /// where one is given. Never a control character.
    Text {
        max_len: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pattern: Option<String>,
    },
    /// A whole number from `min` to `max`.
    Number { min: i64, max: Bound },
    /// One of `options`.
    Select { options: Vec<String> },
    /// `true` or `false`.
    Bool,
}

/// The upper bound of a number: fixed, or the plan's player count (max players may not outgrow the plan).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    Value(i64),
    PlanPlayers,
}

/// A value refused: the variable and its rule, as the customer reads it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct VariableError {
    pub key: String,
    pub problem: String,
}

impl Bound {
    /// The bound for a plan of up to `players` players.
    pub fn resolve(self, players: u32) -> i64 {
        match self {
            Bound::Value(value) => value,
            Bound::PlanPlayers => i64::from(players),
        }
    }
}

impl Rule {
    /// How the rule reads for a customer on a plan of up to `players` players: "a whole number from 1 to 5".
    pub fn describe(&self, players: u32) -> String {
        match self {
            Rule::Text { max_len, pattern: None } => format!("text of at most {max_len} characters"),
            Rule::Text { max_len, pattern: Some(pattern) } => {
                format!("text of at most {max_len} characters matching {pattern}")
            }
            Rule::Number { min, max } => format!("a whole number from {min} to {}", max.resolve(players)),
            Rule::Select { options } => format!("one of {}", options.join(", ")),
            Rule::Bool => "true or false".to_owned(),
        }
    }
}

impl Variable {
    /// The default for a server on a plan of up to `players` players: a number bounded by the plan never starts
    /// above its bound.
    pub fn default_for(&self, players: u32) -> String {
        match (&self.rule, self.default.parse::<i64>()) {
            (Rule::Number { max, .. }, Ok(default)) => default.min(max.resolve(players)).to_string(),
            _ => self.default.clone(),
        }
    }

    /// Whether the rule allows `value` on a plan of up to `players` players; what is wrong with it if not.
    pub fn check(&self, value: &str, players: u32) -> Result<(), VariableError> {
        let refuse =
            || VariableError { key: self.key.clone(), problem: format!("must be {}", self.rule.describe(players)) };
        let ok = match &self.rule {
            Rule::Text { max_len, pattern } => {
                value.chars().count() <= *max_len as usize
                    && !value.chars().any(char::is_control)
                    && pattern.as_deref().is_none_or(|pattern| whole_match(pattern, value))
            }
            Rule::Number { min, max } => value.parse::<i64>().is_ok_and(|n| (*min..=max.resolve(players)).contains(&n)),
            Rule::Select { options } => options.iter().any(|option| option == value),
            Rule::Bool => matches!(value, "true" | "false"),
        };
        if ok { Ok(()) } else { Err(refuse()) }
    }
}

/// Whether `pattern` matches all of `value`. Patterns are checked when the catalog is read, so one that does not
/// compile matches nothing.
fn whole_match(pattern: &str, value: &str) -> bool {
    regex_lite::Regex::new(&format!("^(?:{pattern})$")).is_ok_and(|regex| regex.is_match(value))
}

/// Whether `pattern` is a regular expression this crate can use.
pub(crate) fn pattern_error(pattern: &str) -> Option<String> {
    regex_lite::Regex::new(pattern).err().map(|error| error.to_string())
}

/// A server's variable values: every variable of its game, each valid for its plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Values(pub BTreeMap<String, String>);

impl Values {
    /// The values of a new server on a plan of up to `players` players, or of a change: `given` over `current`
    /// over the defaults (for the operator's
    /// own variables, only those an operator set: the others follow the catalog). Refuses keys the game does not
    /// have, values against their rule, and (unless `operator`) changes to variables the customer may not edit.
    /// All problems are checked before anything is returned, so a refusal changes nothing.
    pub fn merge(
        variables: &[Variable],
        players: u32,
        current: &Values,
        given: &BTreeMap<String, String>,
        operator: bool,
    ) -> Result<Values, VariableError> {
        for key in given.keys() {
            if !variables.iter().any(|variable| &variable.key == key) {
                return Err(VariableError { key: key.clone(), problem: "is not a variable of this game".to_owned() });
            }
        }
        let mut merged = BTreeMap::new();
        for variable in variables {
            // An operator's setting follows the catalog, unless an operator set it for this server: a corrected
            // catalog then reaches every server.
            if !variable.editable && !given.contains_key(&variable.key) && !current.0.contains_key(&variable.key) {
                continue;
            }
            let value = match given.get(&variable.key) {
                Some(value) => {
                    let unchanged = current.get(&variable.key).unwrap_or(&variable.default_for(players)) == value;
                    if !variable.editable && !operator && !unchanged {
                        return Err(VariableError {
                            key: variable.key.clone(),
                            problem: "is set by the operator and cannot be changed".to_owned(),
                        });
                    }
                    value.clone()
                }
                None => current.get(&variable.key).cloned().unwrap_or_else(|| variable.default_for(players)),
            };
            variable.check(&value, players)?;
            merged.insert(variable.key.clone(), value);
        }
        Ok(Values(merged))
    }

    pub fn get(&self, key: &str) -> Option<&String> {
        self.0.get(key)
    }
}

/// A placeholder in a template that has no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{{{0}}}` has no value")]
pub struct Unfilled(pub String);

/// Replaces every `{name}` in `template` by `value(name)`. `{{` and `}}` stand for literal braces (a JSON
/// template). A placeholder without a value is an error, never left in the text.
pub fn fill(template: &str, mut value: impl FnMut(&str) -> Option<String>) -> Result<String, Unfilled> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        out.push_str(&rest[..open]);
        let brace = rest.as_bytes()[open];
        rest = &rest[open + 1..];
        if rest.as_bytes().first() == Some(&brace) {
            out.push(char::from(brace));
            rest = &rest[1..];
            continue;
        }
        if brace == b'}' {
            out.push('}');
            continue;
        }
        let Some(close) = rest.find('}') else {
            out.push('{');
            continue;
        };
        let name = &rest[..close];
        out.push_str(&value(name).ok_or_else(|| Unfilled(name.to_owned()))?);
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The placeholder names in `template` (for checking a catalog's templates).
pub fn placeholders(template: &str) -> Vec<String> {
    let mut names = Vec::new();
    let _ = fill(template, |name| {
        names.push(name.to_owned());
        Some(String::new())
    });
    names
}

impl fmt::Display for Values {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pairs: Vec<String> = self.0.iter().map(|(key, value)| format!("{key}={value}")).collect();
        f.write_str(&pairs.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    /// A plan for up to five players.
    const PLAYERS: u32 = 5;

    fn number(key: &str, max: Bound, default: &str) -> Variable {
        Variable {
            key: key.into(),
            name: key.into(),
            description: String::new(),
            rule: Rule::Number { min: 1, max },
            default: default.into(),
            editable: true,
            reinstall: false,
        }
    }

    #[test]
    fn templates_fill_placeholders_and_keep_escaped_braces() {
        let value = |name: &str| (name == "port").then(|| "25565".to_owned());
        assert_eq!(fill("--port {port}", value), Ok("--port 25565".into()));
        assert_eq!(fill("{{\"a\": {port}}}", value), Ok("{\"a\": 25565}".into()));
        assert_eq!(fill("{missing}", value), Err(Unfilled("missing".into())));
        assert_eq!(placeholders("{a} and {b} but {{c}}"), vec!["a".to_owned(), "b".to_owned()]);
    }

    #[test]
    fn a_number_bounded_by_the_plan_refuses_more_players_than_it_has() {
        let players = PLAYERS;
        let max_players = number("MAX_PLAYERS", Bound::PlanPlayers, "20");
        assert_eq!(max_players.default_for(players), players.to_string());
        assert!(max_players.check("3", players).is_ok());
        let error = max_players.check("99", players).expect_err("over the plan");
        assert_eq!(error.to_string(), format!("MAX_PLAYERS: must be a whole number from 1 to {players}"));
        assert!(max_players.check("two", players).is_err());
    }

    #[test]
    fn merging_refuses_unknown_keys_and_fixed_variables_and_keeps_the_rest() {
        let mut fixed = number("FIXED", Bound::Value(10), "4");
        fixed.editable = false;
        let text = Variable {
            key: "MOTD".into(),
            name: "MOTD".into(),
            description: String::new(),
            rule: Rule::Text { max_len: 8, pattern: Some("[a-z ]+".into()) },
            default: "hello".into(),
            editable: true,
            reinstall: false,
        };
        let variables = [fixed, text];
        let given = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        let merged = Values::merge(&variables, PLAYERS, &Values::default(), &given(&[("MOTD", "hi all")]), false)
            .expect("valid");
        assert_eq!(merged.get("FIXED"), None, "an operator's setting follows the catalog");
        assert_eq!(merged.get("MOTD").map(String::as_str), Some("hi all"));

        let unknown = Values::merge(&variables, PLAYERS, &merged, &given(&[("NOPE", "1")]), false);
        assert_eq!(unknown.map_err(|e| e.key), Err("NOPE".to_owned()));
        let fixed_change = Values::merge(&variables, PLAYERS, &merged, &given(&[("FIXED", "5")]), false);
        assert!(fixed_change.expect_err("operator's").to_string().starts_with("FIXED: is set by the operator"));
        assert!(Values::merge(&variables, PLAYERS, &merged, &given(&[("FIXED", "5")]), true).is_ok());
        let pattern = Values::merge(&variables, PLAYERS, &merged, &given(&[("MOTD", "HI")]), false);
        assert_eq!(pattern.map_err(|e| e.key), Err("MOTD".to_owned()));
        let free = Variable { rule: Rule::Text { max_len: 8, pattern: None }, ..variables[1].clone() };
        assert!(free.check("a b", PLAYERS).is_ok());
        assert!(free.check("a\nb", PLAYERS).is_err(), "a newline could add a line to a config file");
        assert!(free.check("123456789", PLAYERS).is_err());
    }
}
