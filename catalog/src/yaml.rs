//! Reading the catalog document: YAML (`catalog/games.yaml`, embedded as the default) into loosely typed `Raw*`
//! structs first and only then validated into a [`Catalog`], so that every mistake is reported with the game,
//! plan and field it concerns instead of as a bare deserialisation error — an operator editing the ConfigMap
//! must be told exactly what to fix.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::Deserialize;

use crate::games::{
    Catalog, Game, GamePort, LocalProcess, MAIN_PORT, Plan, PlayerRange, Protocol, QueryProtocol, QuerySpec, RunAs,
};
use crate::quantity::{ByteSize, Cpu};

/// The catalog that ships with Spawnpoint.
pub const BUILTIN_YAML: &str = include_str!("../games.yaml");

impl Catalog {
    /// The catalog embedded in the binary. It is validated by this crate's tests, so it cannot fail at runtime.
    pub fn builtin() -> Self {
        match Self::from_yaml(BUILTIN_YAML) {
            Ok(catalog) => catalog,
            Err(error) => unreachable!("the embedded catalog is checked by tests: {error}"),
        }
    }

    /// Parses and validates a catalog document.
    pub fn from_yaml(text: &str) -> Result<Self, CatalogError> {
        let raw: RawCatalog = serde_yaml_ng::from_str(text).map_err(|e| CatalogError::Syntax(e.to_string()))?;
        raw.validate()
    }
}

/// Why a catalog was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("the catalog is not valid YAML for its format: {0}")]
    Syntax(String),
    #[error("the catalog has {} problem(s):\n{}", .0.len(), ProblemList(.0))]
    Invalid(Vec<Problem>),
}

/// One validation failure, located by game, plan and field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub game: String,
    pub plan: Option<String>,
    pub field: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "game `{}`", self.game)?;
        if let Some(plan) = &self.plan {
            write!(f, ", plan `{plan}`")?;
        }
        write!(f, ", field `{}`: {}", self.field, self.message)
    }
}

struct ProblemList<'a>(&'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for problem in self.0 {
            writeln!(f, "  - {problem}")?;
        }
        Ok(())
    }
}

// ---- the document as written --------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    games: Vec<RawGame>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGame {
    id: String,
    name: String,
    image: String,
    port: RawPort,
    #[serde(default)]
    extra_ports: Vec<RawPort>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    stop_command: Option<String>,
    srv_service: Option<String>,
    query: Option<RawQuery>,
    local: Option<RawLocal>,
    run_as: Option<RawRunAs>,
    #[serde(default)]
    plans: Vec<RawPlan>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRunAs {
    user: Number,
    group: Number,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPort {
    /// Required for extra ports; the main port is always [`MAIN_PORT`].
    name: Option<String>,
    port: Number,
    protocol: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuery {
    protocol: String,
    port: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLocal {
    command: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    ready_line: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlan {
    id: String,
    name: String,
    players: RawPlayers,
    cpu: String,
    memory: String,
    storage: String,
    price_cents: Number,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlayers {
    min: Number,
    max: Number,
}

/// A number as written, so `3.5` or `"300"` can be refused with a located message rather than a parse error.
#[derive(Deserialize)]
#[serde(untagged)]
enum Number {
    Whole(i64),
    Decimal(f64),
    Text(String),
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Number::Whole(n) => write!(f, "{n}"),
            Number::Decimal(n) => write!(f, "{n}"),
            Number::Text(s) => write!(f, "{s:?}"),
        }
    }
}

// ---- validation -------------------------------------------------------------------------------------------

/// Collects every problem in one pass so an operator fixes the file once, not once per error.
struct Checker {
    problems: Vec<Problem>,
    game: String,
    plan: Option<String>,
}

impl Checker {
    fn report(&mut self, field: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            game: self.game.clone(),
            plan: self.plan.clone(),
            field: field.to_owned(),
            message: message.into(),
        });
    }

    /// A whole number within `range`, or a located problem.
    fn whole<T: TryFrom<i64>>(
        &mut self,
        field: &str,
        value: &Number,
        range: std::ops::RangeInclusive<i64>,
        what: &str,
    ) -> Option<T> {
        match value {
            Number::Whole(n) if range.contains(n) => T::try_from(*n).ok(),
            _ => {
                self.report(field, format!("must be {what}, got {value}"));
                None
            }
        }
    }

    fn slug(&mut self, field: &str, value: &str) {
        let valid = !value.is_empty()
            && value.len() <= 40
            && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !value.starts_with('-')
            && !value.ends_with('-');
        if !valid {
            self.report(
                field,
                format!("`{value}` must be 1–40 lower-case letters, digits or '-', not starting or ending with '-'"),
            );
        }
    }

    fn not_blank(&mut self, field: &str, value: &str) {
        if value.trim().is_empty() {
            self.report(field, "must not be empty");
        }
    }

    fn protocol(&mut self, field: &str, value: &str) -> Option<Protocol> {
        match value {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            other => {
                self.report(field, format!("must be TCP or UDP, got `{other}`"));
                None
            }
        }
    }

    fn port(&mut self, field: &str, raw: &RawPort, name: String) -> Option<GamePort> {
        let port = self.whole(&format!("{field}.port"), &raw.port, 1..=65535, "a port number between 1 and 65535");
        let protocol = self.protocol(&format!("{field}.protocol"), &raw.protocol);
        Some(GamePort { name, port: port?, protocol: protocol? })
    }
}

impl RawCatalog {
    fn validate(self) -> Result<Catalog, CatalogError> {
        let mut checker = Checker { problems: Vec::new(), game: String::new(), plan: None };
        let mut seen_games = HashSet::new();
        let mut games = Vec::new();
        for raw in self.games {
            checker.game = raw.id.clone();
            checker.plan = None;
            if !seen_games.insert(raw.id.clone()) {
                checker.report("id", "is used by more than one game");
            }
            if let Some(game) = raw.validate(&mut checker) {
                games.push(game);
            }
        }
        if checker.problems.is_empty() { Ok(Catalog { games }) } else { Err(CatalogError::Invalid(checker.problems)) }
    }
}

impl RawGame {
    fn validate(self, checker: &mut Checker) -> Option<Game> {
        checker.slug("id", &self.id);
        checker.not_blank("name", &self.name);
        checker.not_blank("image", &self.image);

        let port = checker.port("port", &self.port, MAIN_PORT.to_owned());
        let mut port_names = HashSet::from([MAIN_PORT.to_owned()]);
        let mut extra_ports = Vec::new();
        for (index, raw) in self.extra_ports.iter().enumerate() {
            let field = format!("extra_ports[{index}]");
            let Some(name) = raw.name.clone() else {
                checker.report(&format!("{field}.name"), "is required for an extra port");
                continue;
            };
            checker.slug(&format!("{field}.name"), &name);
            if !port_names.insert(name.clone()) {
                checker.report(&format!("{field}.name"), format!("`{name}` names more than one port"));
            }
            extra_ports.extend(checker.port(&field, raw, name));
        }
        if let Some(port) = &port {
            for extra in &extra_ports {
                if extra.port == port.port && extra.protocol == port.protocol {
                    checker.report("extra_ports", format!("{}/{} repeats the main port", extra.port, extra.protocol));
                }
            }
        }

        let query = self.query.and_then(|raw| {
            let protocol = match raw.protocol.as_str() {
                "minecraft-slp" => Some(QueryProtocol::MinecraftSlp),
                "raknet" => Some(QueryProtocol::Raknet),
                "a2s" => Some(QueryProtocol::A2s),
                other => {
                    checker.report("query.protocol", format!("must be minecraft-slp, raknet or a2s, got `{other}`"));
                    None
                }
            };
            if !port_names.contains(&raw.port) {
                checker.report("query.port", format!("`{}` is not one of this game's ports", raw.port));
            }
            Some(QuerySpec { protocol: protocol?, port: raw.port })
        });

        if let Some(service) = &self.srv_service {
            checker.slug("srv_service", service);
        }
        if let Some(local) = &self.local {
            checker.not_blank("local.command", &local.command);
        }

        let run_as = match &self.run_as {
            None => Some(RunAs::default()),
            Some(raw) => {
                // Not 0: games do not run as root.
                let what = "a user or group id from 1 to 2147483647, not root";
                let user = checker.whole("run_as.user", &raw.user, 1..=i64::from(i32::MAX), what);
                let group = checker.whole("run_as.group", &raw.group, 1..=i64::from(i32::MAX), what);
                user.zip(group).map(|(user, group)| RunAs { user, group })
            }
        };

        if self.plans.is_empty() {
            checker.report("plans", "a game needs at least one plan");
        }
        let mut seen_plans = HashSet::new();
        let mut plans = Vec::new();
        for raw in self.plans {
            checker.plan = Some(raw.id.clone());
            if !seen_plans.insert(raw.id.clone()) {
                checker.report("id", "is used by more than one plan of this game");
            }
            plans.extend(raw.validate(checker));
        }
        checker.plan = None;

        Some(Game {
            id: self.id,
            name: self.name,
            image: self.image,
            port: port?,
            extra_ports,
            env: self.env,
            stop_command: self.stop_command,
            srv_service: self.srv_service,
            query,
            local: self.local.map(|l| LocalProcess {
                command: l.command,
                args: l.args,
                env: l.env,
                ready_line: l.ready_line,
            }),
            run_as: run_as?,
            plans,
        })
    }
}

impl RawPlan {
    fn validate(self, checker: &mut Checker) -> Option<Plan> {
        checker.slug("id", &self.id);
        checker.not_blank("name", &self.name);
        let min =
            checker.whole("players.min", &self.players.min, 1..=100_000, "a whole number of players of at least 1");
        let max =
            checker.whole("players.max", &self.players.max, 1..=100_000, "a whole number of players of at least 1");
        if let (Some(min), Some(max)) = (min, max)
            && min > max
        {
            checker.report("players", format!("min {min} is more than max {max}"));
        }
        let cpu = Cpu::parse(&self.cpu).map_err(|e| checker.report("cpu", e.to_string())).ok();
        let memory = ByteSize::parse(&self.memory).map_err(|e| checker.report("memory", e.to_string())).ok();
        let storage = ByteSize::parse(&self.storage).map_err(|e| checker.report("storage", e.to_string())).ok();
        let price_cents = checker.whole(
            "price_cents",
            &self.price_cents,
            1..=i64::from(u32::MAX),
            "a positive whole number of US cents",
        );
        Some(Plan {
            id: self.id,
            name: self.name,
            players: PlayerRange { min: min?, max: max? },
            cpu: cpu?,
            memory: memory?,
            storage: storage?,
            price_cents: price_cents?,
        })
    }
}
