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
use crate::install::{BUILTIN_PLACEHOLDERS, ConfigFile, ConfigFormat, HostNeeds, InstallStep, StepAction};
use crate::quantity::{ByteSize, Cpu};
use crate::variables::{Bound, Rule, Variable, pattern_error, placeholders};

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
    #[serde(default)]
    variables: Vec<RawVariable>,
    eula: Option<String>,
    #[serde(default)]
    backup: RawBackupHooks,
    local: Option<RawLocal>,
    run_as: Option<RawRunAs>,
    #[serde(default)]
    plans: Vec<RawPlan>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawBackupHooks {
    #[serde(default)]
    before: Vec<String>,
    #[serde(default)]
    after: Vec<String>,
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
    #[serde(default)]
    install: Vec<RawStep>,
    #[serde(default)]
    config_files: Vec<RawConfigFile>,
    java_for_minecraft: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVariable {
    key: String,
    name: String,
    #[serde(default)]
    description: String,
    #[serde(rename = "type")]
    kind: String,
    default: Scalar,
    #[serde(default = "yes")]
    editable: bool,
    #[serde(default)]
    reinstall: bool,
    min: Option<Number>,
    max: Option<Number>,
    max_len: Option<Number>,
    pattern: Option<String>,
    options: Option<Vec<Scalar>>,
}

fn yes() -> bool {
    true
}

/// A YAML scalar taken as the text it reads as (`20`, `true`, `paper`).
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Whole(i64),
    Flag(bool),
    Text(String),
}

impl Scalar {
    fn text(&self) -> String {
        match self {
            Scalar::Whole(n) => n.to_string(),
            Scalar::Flag(b) => b.to_string(),
            Scalar::Text(s) => s.clone(),
        }
    }
}

/// One install step: exactly one of the kinds, and optionally `when`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    #[serde(default)]
    when: BTreeMap<String, Scalar>,
    download: Option<RawDownload>,
    paper: Option<RawPaper>,
    mojang: Option<RawMojang>,
    steamcmd: Option<RawSteamcmd>,
    extract: Option<RawExtract>,
    write_file: Option<RawWriteFile>,
    command: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDownload {
    url: String,
    sha256: String,
    to: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPaper {
    #[serde(default = "paper")]
    project: String,
    version: String,
    to: String,
}

fn paper() -> String {
    "paper".to_owned()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMojang {
    version: String,
    to: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSteamcmd {
    app: Number,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExtract {
    archive: String,
    #[serde(default = "here")]
    to: String,
}

fn here() -> String {
    ".".to_owned()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWriteFile {
    path: String,
    template: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfigFile {
    path: String,
    format: String,
    set: BTreeMap<String, Scalar>,
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
    backups: Option<Number>,
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

    /// A path inside the server's data directory: relative, without `..`.
    fn relative_path(&mut self, field: &str, path: &str) {
        let escapes = path.starts_with('/') || path.split('/').any(|part| part == "..") || path.contains('\0');
        if path.is_empty() || escapes {
            self.report(field, format!("`{path}` must be a relative path inside the server's data directory"));
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
        let variables = validate_variables(checker, self.variables, &self.plans);
        let keys: HashSet<&str> =
            variables.iter().map(|v| v.key.as_str()).chain(BUILTIN_PLACEHOLDERS.iter().copied()).collect();
        if let Some(eula) = &self.eula
            && !eula.starts_with("https://")
        {
            checker.report("eula", "must be the https:// address of the game's licence");
        }
        let local = self.local.map(|raw| raw.validate(checker, &keys));
        for (field, commands) in [("backup.before", &self.backup.before), ("backup.after", &self.backup.after)] {
            if commands.iter().any(|command| command.trim().is_empty() || command.contains('\n')) {
                checker.report(field, "each command must be one line of text");
            }
        }
        let backup = crate::games::BackupHooks { before: self.backup.before, after: self.backup.after };

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
            variables,
            eula: self.eula,
            backup,
            local,
            run_as: run_as?,
            plans,
        })
    }
}

/// Checks each variable (its key, rule and default) and returns the valid ones.
fn validate_variables(checker: &mut Checker, raw: Vec<RawVariable>, plans: &[RawPlan]) -> Vec<Variable> {
    let mut seen = HashSet::new();
    let mut variables = Vec::new();
    // A default bounded by the plan is checked against the smallest plan's bound.
    let fewest_players = plans
        .iter()
        .filter_map(|plan| match plan.players.max {
            Number::Whole(n) => Some(n),
            _ => None,
        })
        .min()
        .unwrap_or(1);
    for (index, raw) in raw.into_iter().enumerate() {
        let field = |name: &str| format!("variables[{index}].{name}");
        let valid_key = !raw.key.is_empty()
            && raw.key.starts_with(|c: char| c.is_ascii_uppercase())
            && raw.key.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if !valid_key {
            checker.report(&field("key"), format!("`{}` must be upper-case letters, digits or '_'", raw.key));
        }
        if BUILTIN_PLACEHOLDERS.contains(&raw.key.to_lowercase().as_str()) || !seen.insert(raw.key.clone()) {
            checker.report(&field("key"), format!("`{}` is used more than once", raw.key));
        }
        checker.not_blank(&field("name"), &raw.name);
        let rule = match raw.kind.as_str() {
            "text" => {
                let max_len = match &raw.max_len {
                    Some(n) => checker.whole(&field("max_len"), n, 1..=4096, "a length from 1 to 4096"),
                    None => Some(255),
                };
                if let Some(error) = raw.pattern.as_deref().and_then(pattern_error) {
                    checker.report(&field("pattern"), format!("is not a regular expression: {error}"));
                }
                max_len.map(|max_len| Rule::Text { max_len, pattern: raw.pattern.clone() })
            }
            "number" => {
                let min = match &raw.min {
                    Some(n) => checker.whole(&field("min"), n, i64::MIN..=i64::MAX, "a whole number"),
                    None => Some(0),
                };
                let max = match &raw.max {
                    Some(Number::Text(text)) if text == "plan" => Some(Bound::PlanPlayers),
                    Some(n) => checker
                        .whole(&field("max"), n, i64::MIN..=i64::MAX, "a whole number or `plan`")
                        .map(Bound::Value),
                    None => Some(Bound::Value(i64::MAX)),
                };
                min.zip(max).map(|(min, max)| Rule::Number { min, max })
            }
            "select" => {
                let options: Vec<String> = raw.options.iter().flatten().map(Scalar::text).collect();
                if options.is_empty() {
                    checker.report(&field("options"), "a select needs at least one option");
                }
                Some(Rule::Select { options })
            }
            "bool" => Some(Rule::Bool),
            other => {
                checker.report(&field("type"), format!("must be text, number, select or bool, got `{other}`"));
                None
            }
        };
        let Some(rule) = rule else { continue };
        let variable = Variable {
            key: raw.key,
            name: raw.name,
            description: raw.description,
            rule,
            default: raw.default.text(),
            editable: raw.editable,
            reinstall: raw.reinstall,
        };
        let fewest = u32::try_from(fewest_players).unwrap_or(1);
        // A default above the plan's bound is lowered to it per server, so it is checked as lowered.
        if let Err(error) = variable.check(&variable.default_for(fewest), fewest) {
            checker.report(&field("default"), error.problem);
        }
        variables.push(variable);
    }
    variables
}

impl RawLocal {
    fn validate(self, checker: &mut Checker, keys: &HashSet<&str>) -> LocalProcess {
        checker.not_blank("local.command", &self.command);
        let mut templates: Vec<(String, String)> = vec![("local.command".into(), self.command.clone())];
        templates.extend(self.args.iter().enumerate().map(|(i, arg)| (format!("local.args[{i}]"), arg.clone())));
        templates.extend(self.env.iter().map(|(key, value)| (format!("local.env.{key}"), value.clone())));

        let mut install = Vec::new();
        for (index, raw) in self.install.into_iter().enumerate() {
            let field = format!("local.install[{index}]");
            let when: BTreeMap<String, String> = raw.when.iter().map(|(k, v)| (k.clone(), v.text())).collect();
            for key in when.keys() {
                if !keys.contains(key.as_str()) {
                    checker.report(&format!("{field}.when"), format!("`{key}` is not a variable of this game"));
                }
            }
            let Some(action) = raw.action(checker, &field) else { continue };
            for template in action.templates() {
                templates.push((field.clone(), template.to_owned()));
            }
            let paths: Vec<&str> = match &action {
                StepAction::Download { to, .. } | StepAction::Paper { to, .. } | StepAction::Mojang { to, .. } => {
                    vec![to]
                }
                StepAction::Extract { archive, to } => vec![archive, to],
                StepAction::WriteFile { path, .. } => vec![path],
                StepAction::Steamcmd { .. } | StepAction::Command { .. } => vec![],
            };
            for path in paths {
                checker.relative_path(&field, path);
            }
            install.push(InstallStep { when, action });
        }

        let mut config_files = Vec::new();
        for (index, raw) in self.config_files.into_iter().enumerate() {
            let field = format!("local.config_files[{index}]");
            checker.relative_path(&format!("{field}.path"), &raw.path);
            let format = match raw.format.as_str() {
                "properties" => Some(ConfigFormat::Properties),
                "yaml" => Some(ConfigFormat::Yaml),
                "json" => Some(ConfigFormat::Json),
                "ini" => Some(ConfigFormat::Ini),
                other => {
                    checker.report(
                        &format!("{field}.format"),
                        format!("must be properties, yaml, json or ini, got `{other}`"),
                    );
                    None
                }
            };
            let set: BTreeMap<String, String> = raw.set.iter().map(|(k, v)| (k.clone(), v.text())).collect();
            templates.extend(set.iter().map(|(key, value)| (format!("{field}.set.{key}"), value.clone())));
            if let Some(format) = format {
                config_files.push(ConfigFile { path: raw.path, format, set });
            }
        }
        if let Some(variable) = &self.java_for_minecraft
            && !keys.contains(variable.as_str())
        {
            checker.report("local.java_for_minecraft", format!("`{variable}` is not a variable of this game"));
        }
        for (field, template) in templates {
            for name in placeholders(&template) {
                if !keys.contains(name.as_str()) {
                    checker.report(
                        &field,
                        format!(
                            "`{{{name}}}` is neither a variable of this game nor one of {}",
                            BUILTIN_PLACEHOLDERS.join(", ")
                        ),
                    );
                }
            }
        }
        LocalProcess {
            command: self.command,
            args: self.args,
            env: self.env,
            ready_line: self.ready_line,
            install,
            config_files,
            needs: HostNeeds { java_for_minecraft: self.java_for_minecraft },
        }
    }
}

impl RawStep {
    fn action(self, checker: &mut Checker, field: &str) -> Option<StepAction> {
        let mut actions = Vec::new();
        if let Some(d) = self.download {
            let is_hex = d.sha256.len() == 64 && d.sha256.bytes().all(|b| b.is_ascii_hexdigit());
            if !is_hex && !d.sha256.contains('{') {
                checker.report(&format!("{field}.download.sha256"), "must be 64 hexadecimal digits");
            }
            let sha256 = if is_hex { d.sha256.to_ascii_lowercase() } else { d.sha256 };
            actions.push(StepAction::Download { url: d.url, sha256, to: d.to });
        }
        if let Some(p) = self.paper {
            actions.push(StepAction::Paper { project: p.project, version: p.version, to: p.to });
        }
        if let Some(m) = self.mojang {
            actions.push(StepAction::Mojang { version: m.version, to: m.to });
        }
        if let Some(s) = self.steamcmd
            && let Some(app) =
                checker.whole(&format!("{field}.steamcmd.app"), &s.app, 1..=i64::from(u32::MAX), "a Steam app id")
        {
            actions.push(StepAction::Steamcmd { app });
        }
        if let Some(e) = self.extract {
            let known = [".zip", ".tar.gz", ".tgz"].iter().any(|end| e.archive.ends_with(end));
            if !known {
                checker.report(&format!("{field}.extract.archive"), "must end in .zip, .tar.gz or .tgz");
            }
            actions.push(StepAction::Extract { archive: e.archive, to: e.to });
        }
        if let Some(w) = self.write_file {
            actions.push(StepAction::WriteFile { path: w.path, template: w.template });
        }
        if let Some(argv) = self.command {
            if argv.first().is_none_or(|program| program.trim().is_empty()) {
                checker.report(&format!("{field}.command"), "needs a program to run");
            }
            actions.push(StepAction::Command { argv });
        }
        if actions.len() != 1 {
            checker.report(
                field,
                "must be exactly one of download, paper, mojang, steamcmd, extract, write_file or command",
            );
            return None;
        }
        actions.pop()
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
        let backups = match &self.backups {
            None => Some(crate::games::DEFAULT_BACKUPS),
            Some(number) => checker.whole("backups", number, 0..=1000, "a whole number of backups from 0 to 1000"),
        };
        Some(Plan {
            id: self.id,
            name: self.name,
            players: PlayerRange { min: min?, max: max? },
            cpu: cpu?,
            memory: memory?,
            storage: storage?,
            price_cents: price_cents?,
            backups: backups?,
        })
    }
}
