//! The game catalog: which games can be hosted, how each runs, and the plans customers pay for.
//!
//! The catalog is read from YAML by [`crate::yaml`], which reports every mistake with the game, plan and field
//! it concerns.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::install::{ConfigFile, HostNeeds, InstallStep};
use crate::quantity::{ByteSize, Cpu};
use crate::variables::Variable;

/// Name of a game's main port, as used by `query.port` and by drivers.
pub const MAIN_PORT: &str = "game";

/// A validated game catalog. It is the operator's: it says how each game runs, so it is never sent to a browser
/// or an API client as it is (see [`PublicGame`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    /// Set by [`crate::yaml`], which reads and validates the catalog document.
    pub(crate) games: Vec<Game>,
}

/// One hostable game, with how it runs (image, environment, local command): the operator's view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Game {
    pub id: String,
    pub name: String,
    /// Container image on a cluster.
    pub image: String,
    /// The port players connect to (named [`MAIN_PORT`]).
    pub port: GamePort,
    /// Further ports (query, rcon, …), each with its own name.
    pub extra_ports: Vec<GamePort>,
    pub env: BTreeMap<String, String>,
    /// Console command that shuts the game down cleanly; without one the game gets SIGTERM.
    pub stop_command: Option<String>,
    /// DNS SRV service name (`minecraft` → `_minecraft._tcp`).
    pub srv_service: Option<String>,
    pub query: Option<QuerySpec>,
    /// Startup variables the customer picks (or the operator fixes), filled into templates by key.
    pub variables: Vec<Variable>,
    /// Where the game's licence is, when a server may only run once its owner accepted it.
    pub eula: Option<String>,
    /// What to type on the console around a backup of the running game.
    pub backup: BackupHooks,
    /// How the single-box driver starts the game; `None` means cluster only.
    pub local: Option<LocalProcess>,
    /// The user and group the game's container runs as on a cluster (its volume is made writable for the group).
    pub run_as: RunAs,
    pub plans: Vec<Plan>,
}

/// A non-root user and group id (`run_as: {user, group}` in the catalog; default 1000:1000, the user most game
/// images are built for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAs {
    pub user: u32,
    pub group: u32,
}

impl Default for RunAs {
    fn default() -> Self {
        Self { user: 1000, group: 1000 }
    }
}

/// A game as customers, browsers and API clients see it: what they choose between and what their players need to
/// know (ports and plans with their prices), never how it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicGame {
    pub id: String,
    pub name: String,
    /// The port players connect to.
    pub port: GamePort,
    /// Further ports (query, rcon, …).
    pub extra_ports: Vec<GamePort>,
    pub plans: Vec<Plan>,
    pub variables: Vec<Variable>,
    /// The licence a customer must accept to create a server of this game.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eula: Option<String>,
    /// Why this host cannot run the game ("needs Java 21"), filled in by the server that lists it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
}

/// A named port with its transport protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GamePort {
    pub name: String,
    pub port: u16,
    pub protocol: Protocol,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Protocol {
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
}

/// How to ask a running game for its status (players online, version).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuerySpec {
    pub protocol: QueryProtocol,
    /// Name of the port to query: [`MAIN_PORT`] or one of the extra ports.
    pub port: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QueryProtocol {
    /// Minecraft Java Server List Ping.
    MinecraftSlp,
    /// Minecraft Bedrock RakNet unconnected ping.
    Raknet,
    /// Valve A2S (Source engine query).
    A2s,
}

/// How the local driver installs, configures and runs a game. Its texts are templates (see
/// [`crate::install::BUILTIN_PLACEHOLDERS`] and the game's variables).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalProcess {
    pub command: String,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// A piece of the output line the game prints once players can connect; without one, the game counts as
    /// ready when its TCP port accepts connections.
    pub ready_line: Option<String>,
    /// Run in order before the first start and on reinstall.
    pub install: Vec<InstallStep>,
    /// Keys set in the game's config files before every start.
    pub config_files: Vec<ConfigFile>,
    pub needs: HostNeeds,
}

/// What a customer buys: resources and a monthly price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub id: String,
    pub name: String,
    pub players: PlayerRange,
    pub cpu: Cpu,
    pub memory: ByteSize,
    pub storage: ByteSize,
    /// US cents per month.
    pub price_cents: u32,
    /// How many backups a server of this plan may keep (`backups:` in the catalog, default 3); locked ones count.
    #[serde(default = "default_backups")]
    pub backups: u32,
}

/// Backups a plan keeps when the catalog does not say.
pub const DEFAULT_BACKUPS: u32 = 3;

fn default_backups() -> u32 {
    DEFAULT_BACKUPS
}

/// Console commands typed before a backup of a running server is taken and after (`backup: {before, after}`),
/// so the game's files are consistent while they are read: Minecraft's `save-off` and `save-all flush`, then
/// `save-on`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupHooks {
    pub before: Vec<String>,
    pub after: Vec<String>,
}

/// How many players a plan is sized for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlayerRange {
    pub min: u32,
    pub max: u32,
}

impl Catalog {
    pub fn games(&self) -> &[Game] {
        &self.games
    }

    /// Every game as the public sees it.
    pub fn public(&self) -> Vec<PublicGame> {
        self.games.iter().map(Game::public).collect()
    }

    pub fn game(&self, id: &str) -> Option<&Game> {
        self.games.iter().find(|game| game.id == id)
    }

    /// The game and plan a server is made of, if both exist.
    pub fn plan(&self, game: &str, plan: &str) -> Option<(&Game, &Plan)> {
        let game = self.game(game)?;
        game.plan(plan).map(|plan| (game, plan))
    }
}

impl PublicGame {
    pub fn plan(&self, id: &str) -> Option<&Plan> {
        self.plans.iter().find(|plan| plan.id == id)
    }
}

impl Game {
    /// What customers and players may know of this game.
    pub fn public(&self) -> PublicGame {
        PublicGame {
            id: self.id.clone(),
            name: self.name.clone(),
            port: self.port.clone(),
            extra_ports: self.extra_ports.clone(),
            plans: self.plans.clone(),
            // What the operator fixed is theirs to know; customers see what they can choose.
            variables: self.variables.iter().filter(|variable| variable.editable).cloned().collect(),
            eula: self.eula.clone(),
            unavailable: None,
        }
    }

    pub fn plan(&self, id: &str) -> Option<&Plan> {
        self.plans.iter().find(|plan| plan.id == id)
    }

    /// The main port followed by the extra ports.
    pub fn ports(&self) -> impl Iterator<Item = &GamePort> {
        std::iter::once(&self.port).chain(&self.extra_ports)
    }

    /// The service and protocol labels of the SRV record its clients look up (`_minecraft._tcp`), over the
    /// main port's protocol; `None` for games whose clients do not.
    pub fn srv_prefix(&self) -> Option<String> {
        let protocol = match self.port.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        };
        self.srv_service.as_ref().map(|service| format!("_{service}._{protocol}"))
    }
}

impl Plan {
    /// The monthly price for people, e.g. `$3.00/mo`.
    pub fn price_label(&self) -> String {
        format_price(self.price_cents)
    }
}

/// Formats a monthly price in US cents as `$3.00/mo`.
pub fn format_price(cents: u32) -> String {
    format!("${}.{:02}/mo", cents / 100, cents % 100)
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        })
    }
}

impl fmt::Display for PlayerRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}–{}", self.min, self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::{BUILTIN_YAML, CatalogError, Problem};

    /// (game id, plans as `id players cpu memory storage price`) exactly as the product sells them.
    const EXPECTED: &[(&str, &str, &str, &str, &[&str])] = &[
        (
            "minecraft-java",
            "Minecraft: Java Edition",
            "itzg/minecraft-server:latest",
            "25565/TCP",
            &["starter 2-5 2 2Gi 10Gi 300", "standard 5-15 3 4Gi 25Gi 600", "performance 15-30 4 8Gi 50Gi 1200"],
        ),
        (
            "minecraft-bedrock",
            "Minecraft: Bedrock Edition",
            "itzg/minecraft-bedrock-server:latest",
            "19132/UDP",
            &["starter 2-5 1 1Gi 5Gi 200", "standard 5-10 2 2Gi 10Gi 400"],
        ),
        (
            "valheim",
            "Valheim",
            "lloesche/valheim-server:latest",
            "2456/UDP",
            &["starter 2-4 2 4Gi 10Gi 500", "standard 4-8 3 6Gi 20Gi 800"],
        ),
        (
            "rust",
            "Rust",
            "didstopia/rust-server:latest",
            "28015/UDP",
            &["starter 10-25 3 6Gi 20Gi 800", "standard 25-50 4 10Gi 40Gi 1500"],
        ),
        (
            "ark",
            "ARK: Survival Evolved",
            "hermsi/ark-server:latest",
            "7777/UDP",
            &["starter 5-10 4 8Gi 30Gi 1200", "standard 10-25 6 12Gi 60Gi 2000"],
        ),
    ];

    fn describe_plan(plan: &Plan) -> String {
        format!(
            "{} {}-{} {} {} {} {}",
            plan.id,
            plan.players.min,
            plan.players.max,
            plan.cpu.as_str(),
            plan.memory.as_str(),
            plan.storage.as_str(),
            plan.price_cents
        )
    }

    #[test]
    fn builtin_catalog_sells_exactly_the_listed_games_and_plans() {
        let catalog = Catalog::from_yaml(BUILTIN_YAML).expect("the shipped catalog is valid");
        for (id, name, image, port, plans) in EXPECTED {
            let game = catalog.game(id).unwrap_or_else(|| panic!("{id} is in the catalog"));
            assert_eq!(game.name, *name);
            assert_eq!(game.image, *image);
            assert_eq!(format!("{}/{}", game.port.port, game.port.protocol), *port);
            let got: Vec<String> = game.plans.iter().map(describe_plan).collect();
            assert_eq!(got, *plans, "plans of {id}");
        }
        let ids: Vec<&str> = catalog.games().iter().map(|g| g.id.as_str()).collect();
        assert_eq!(ids, ["minecraft-java", "minecraft-bedrock", "valheim", "rust", "ark", "demo"]);
    }

    #[test]
    fn builtin_catalog_carries_ports_env_and_runtime_details() {
        let catalog = Catalog::builtin();
        let java = catalog.game("minecraft-java").expect("java");
        assert_eq!(java.env.get("EULA").map(String::as_str), Some("TRUE"));
        assert_eq!(java.env.get("TYPE").map(String::as_str), Some("PAPER"));
        assert_eq!(java.stop_command.as_deref(), Some("stop"));
        assert_eq!(java.srv_service.as_deref(), Some("minecraft"));
        assert_eq!(java.srv_prefix().as_deref(), Some("_minecraft._tcp"));
        assert_eq!(catalog.game("valheim").and_then(Game::srv_prefix), None);
        assert_eq!(catalog.game("valheim").map(|g| g.env.get("SERVER_PUBLIC").cloned()), Some(Some("false".into())));

        let ports = |id: &str| -> Vec<String> {
            catalog.game(id).expect(id).ports().map(|p| format!("{} {}/{}", p.name, p.port, p.protocol)).collect()
        };
        assert_eq!(ports("valheim"), ["game 2456/UDP", "query 2457/UDP"]);
        assert_eq!(ports("rust"), ["game 28015/UDP", "rcon 28016/TCP"]);
        assert_eq!(ports("ark"), ["game 7777/UDP", "query 27015/UDP", "rcon 27020/TCP"]);

        let demo = catalog.game("demo").expect("the demo game is built in");
        assert!(demo.local.is_some(), "the demo game runs on the single box");
        assert!(!demo.plans.is_empty());
    }

    #[test]
    fn prices_display_in_dollars_per_month() {
        assert_eq!(format_price(300), "$3.00/mo");
        assert_eq!(format_price(1200), "$12.00/mo");
        assert_eq!(format_price(1), "$0.01/mo");
        assert_eq!(format_price(1999), "$19.99/mo");
        let catalog = Catalog::builtin();
        let (_, plan) = catalog.plan("minecraft-java", "standard").expect("plan");
        assert_eq!(plan.price_label(), "$6.00/mo");
    }

    #[test]
    fn lookup_by_game_and_plan() {
        let catalog = Catalog::builtin();
        assert!(catalog.plan("valheim", "standard").is_some());
        assert!(catalog.plan("valheim", "performance").is_none());
        assert!(catalog.plan("tetris", "starter").is_none());
    }

    // ---- validation rules: each broken on purpose in an otherwise valid catalog ----

    const VALID: &str = r#"
games:
  - id: alpha
    name: Alpha
    image: example/alpha:1
    port: { port: 1000, protocol: TCP }
    extra_ports: [{ name: query, port: 1001, protocol: UDP }]
    query: { protocol: a2s, port: query }
    plans:
      - { id: small, name: Small, players: { min: 1, max: 4 }, cpu: "1", memory: 1Gi, storage: 5Gi, price_cents: 250 }
  - id: beta
    name: Beta
    image: example/beta:1
    port: { port: 2000, protocol: UDP }
    plans:
      - { id: small, name: Small, players: { min: 1, max: 4 }, cpu: 500m, memory: 512Mi, storage: 1Gi, price_cents: 100 }
"#;

    /// Validates `VALID` with one substitution and returns the single problem it must cause.
    fn only_problem(from: &str, to: &str) -> Problem {
        assert!(VALID.contains(from), "test typo: {from}");
        match Catalog::from_yaml(&VALID.replacen(from, to, 1)) {
            Err(CatalogError::Invalid(mut problems)) if problems.len() == 1 => problems.remove(0),
            other => panic!("replacing {from:?} by {to:?}: expected one problem, got {other:?}"),
        }
    }

    fn located(problem: &Problem, game: &str, plan: Option<&str>, field: &str) {
        assert_eq!(
            (problem.game.as_str(), problem.plan.as_deref(), problem.field.as_str()),
            (game, plan, field),
            "{problem}"
        );
    }

    #[test]
    fn the_valid_fixture_is_valid() {
        let catalog = Catalog::from_yaml(VALID).expect("valid");
        assert_eq!(catalog.games().len(), 2);
    }

    #[test]
    fn duplicate_game_ids_are_refused() {
        let problem = only_problem("id: beta", "id: alpha");
        located(&problem, "alpha", None, "id");
        assert!(problem.message.contains("more than one game"));
    }

    #[test]
    fn duplicate_plan_ids_within_a_game_are_refused() {
        let doubled = VALID.replacen(
            "      - { id: small, name: Small, players: { min: 1, max: 4 }, cpu: \"1\"",
            "      - { id: small, name: Again, players: { min: 1, max: 2 }, cpu: \"1\", memory: 1Gi, storage: 1Gi, price_cents: 5 }\n      - { id: small, name: Small, players: { min: 1, max: 4 }, cpu: \"1\"",
            1,
        );
        let Err(CatalogError::Invalid(problems)) = Catalog::from_yaml(&doubled) else { panic!("accepted") };
        assert_eq!(problems.len(), 1, "{problems:?}");
        located(&problems[0], "alpha", Some("small"), "id");
    }

    #[test]
    fn ports_outside_the_valid_range_are_refused() {
        located(&only_problem("port: 1000,", "port: 0,"), "alpha", None, "port.port");
        let problem = only_problem("port: 2000,", "port: 65536,");
        located(&problem, "beta", None, "port.port");
        assert!(problem.message.contains("65536"));
        located(&only_problem("port: 1001,", "port: 70000,"), "alpha", None, "extra_ports[0].port");
        located(&only_problem("port: 1000,", "port: \"http\","), "alpha", None, "port.port");
    }

    #[test]
    fn games_run_as_a_non_root_user_default_1000() {
        let catalog = Catalog::from_yaml(VALID).expect("valid");
        assert_eq!(catalog.games()[0].run_as, RunAs { user: 1000, group: 1000 });
        let with = |run_as: &str| {
            VALID.replacen(
                "    image: example/beta:1\n",
                &format!("    image: example/beta:1\n    run_as: {run_as}\n"),
                1,
            )
        };
        let catalog = Catalog::from_yaml(&with("{ user: 70, group: 71 }")).expect("valid");
        assert_eq!(catalog.game("beta").map(|game| game.run_as), Some(RunAs { user: 70, group: 71 }));
        let Err(CatalogError::Invalid(problems)) = Catalog::from_yaml(&with("{ user: 0, group: 0 }")) else {
            panic!("root accepted")
        };
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["run_as.user", "run_as.group"]);
        assert!(problems[0].message.contains("not root"), "{}", problems[0]);
    }

    #[test]
    fn protocols_other_than_tcp_and_udp_are_refused() {
        let problem = only_problem("protocol: TCP", "protocol: SCTP");
        located(&problem, "alpha", None, "port.protocol");
        assert!(problem.message.contains("SCTP"));
        located(&only_problem("protocol: UDP }]", "protocol: udp }]"), "alpha", None, "extra_ports[0].protocol");
    }

    #[test]
    fn unparsable_quantities_are_refused() {
        located(&only_problem("cpu: \"1\"", "cpu: lots"), "alpha", Some("small"), "cpu");
        located(&only_problem("memory: 1Gi", "memory: 1GB"), "alpha", Some("small"), "memory");
        located(&only_problem("storage: 1Gi", "storage: \"\""), "beta", Some("small"), "storage");
        located(&only_problem("cpu: 500m", "cpu: \"0\""), "beta", Some("small"), "cpu");
    }

    #[test]
    fn prices_must_be_positive_whole_cents() {
        for bad in ["0", "-100", "2.5", "\"300\""] {
            let problem = only_problem("price_cents: 250", &format!("price_cents: {bad}"));
            located(&problem, "alpha", Some("small"), "price_cents");
            assert!(problem.message.contains("positive whole number"), "{bad}: {problem}");
        }
    }

    #[test]
    fn a_game_without_plans_is_refused() {
        let no_plans = VALID.replacen(
            "    plans:\n      - { id: small, name: Small, players: { min: 1, max: 4 }, cpu: 500m, memory: 512Mi, storage: 1Gi, price_cents: 100 }\n",
            "    plans: []\n",
            1,
        );
        let Err(CatalogError::Invalid(problems)) = Catalog::from_yaml(&no_plans) else { panic!("accepted") };
        assert_eq!(problems.len(), 1, "{problems:?}");
        located(&problems[0], "beta", None, "plans");
    }

    #[test]
    fn player_ranges_and_ids_are_checked() {
        located(
            &only_problem("min: 1, max: 4 }, cpu: \"1\"", "min: 5, max: 4 }, cpu: \"1\""),
            "alpha",
            Some("small"),
            "players",
        );
        located(
            &only_problem("min: 1, max: 4 }, cpu: 500m", "min: 0, max: 4 }, cpu: 500m"),
            "beta",
            Some("small"),
            "players.min",
        );
        located(&only_problem("id: beta", "id: Beta_Game"), "Beta_Game", None, "id");
    }

    #[test]
    fn query_must_name_a_port_and_a_known_protocol() {
        located(&only_problem("port: query }", "port: status }"), "alpha", None, "query.port");
        located(&only_problem("protocol: a2s", "protocol: gamespy"), "alpha", None, "query.protocol");
    }

    #[test]
    fn every_problem_is_reported_at_once_and_named_in_the_message() {
        let broken =
            VALID.replacen("protocol: TCP", "protocol: SCTP", 1).replacen("price_cents: 100", "price_cents: 0", 1);
        let error = Catalog::from_yaml(&broken).expect_err("two problems");
        let text = error.to_string();
        assert!(text.contains("2 problem(s)"), "{text}");
        assert!(text.contains("game `alpha`, field `port.protocol`"), "{text}");
        assert!(text.contains("game `beta`, plan `small`, field `price_cents`"), "{text}");
    }

    #[test]
    fn unknown_fields_and_bad_yaml_are_refused() {
        assert!(matches!(Catalog::from_yaml("games: [{ id: x"), Err(CatalogError::Syntax(_))));
        let typo = VALID.replacen("image: example/beta:1", "image: example/beta:1\n    imgae: typo", 1);
        assert!(matches!(Catalog::from_yaml(&typo), Err(CatalogError::Syntax(e)) if e.contains("imgae")));
    }

    #[test]
    fn every_game_runs_on_the_single_box_and_says_how_it_is_installed() {
        for game in Catalog::builtin().games() {
            let local = game.local.as_ref().unwrap_or_else(|| panic!("{} has no local section", game.id));
            assert!(local.ready_line.is_some(), "{} says when it is ready", game.id);
            if game.id != "demo" {
                assert!(!local.install.is_empty(), "{} is installed by steps", game.id);
            }
        }
        let java = Catalog::builtin().game("minecraft-java").cloned().expect("java");
        let kinds: Vec<_> =
            java.local.as_ref().map(|l| l.install.iter().map(|s| s.action.kind()).collect()).expect("local");
        assert_eq!(kinds, ["paper", "mojang"]);
        assert!(java.eula.is_some(), "Minecraft's licence must be accepted");
        let public = java.public();
        assert!(public.variables.iter().any(|v| v.key == "MAX_PLAYERS"));
        let bedrock = Catalog::builtin().game("minecraft-bedrock").expect("bedrock").public();
        assert!(!bedrock.variables.iter().any(|v| v.key == "BEDROCK_ZIP_URL"), "the operator's settings stay theirs");
    }

    const LOCAL: &str = r#"
    variables:
      - { key: VERSION, name: Version, type: text, max_len: 8, pattern: '[0-9.]+', default: "1.0" }
      - { key: PLAYERS, name: Players, type: number, min: 1, max: plan, default: 99 }
    local:
      command: ./game
      args: ["--port", "{port}", "--version", "{VERSION}"]
      install:
        - { when: { VERSION: "1.0" }, download: { url: "https://example.com/{VERSION}.zip", sha256: "{VERSION}", to: game.zip } }
        - extract: { archive: game.zip }
      config_files:
        - { path: game.properties, format: properties, set: { players: "{PLAYERS}" } }
    plans:"#;

    fn with_local(from: &str, to: &str) -> String {
        let valid = VALID.replacen("    plans:", LOCAL, 1);
        assert!(valid.contains(from), "test typo: {from}");
        valid.replacen(from, to, 1)
    }

    fn problem_fields(yaml: &str) -> Vec<String> {
        match Catalog::from_yaml(yaml) {
            Ok(_) => Vec::new(),
            Err(CatalogError::Invalid(problems)) => problems.into_iter().map(|p| p.field).collect(),
            Err(other) => panic!("{other}"),
        }
    }

    #[test]
    fn local_sections_are_checked_step_by_step() {
        assert_eq!(problem_fields(&with_local("", "")), Vec::<String>::new(), "the fixture is valid");
        let cases = [
            ("{VERSION}\"]", "{VERISON}\"]", "local.args[3]"),
            ("to: game.zip", "to: ../game.zip", "local.install[0]"),
            ("archive: game.zip }", "archive: game.rar }", "local.install[1].extract.archive"),
            (
                "- extract: { archive: game.zip }",
                "- { extract: { archive: game.zip }, command: [ls] }",
                "local.install[1]",
            ),
            ("when: { VERSION:", "when: { VERSIO:", "local.install[0].when"),
            ("format: properties", "format: xml", "local.config_files[0].format"),
            ("path: game.properties", "path: /etc/passwd", "local.config_files[0].path"),
            ("default: \"1.0\"", "default: \"one\"", "variables[0].default"),
            ("type: number", "type: float", "variables[1].type"),
            ("key: PLAYERS", "key: players", "variables[1].key"),
            ("pattern: '[0-9.]+'", "pattern: '[0-9'", "variables[0].pattern"),
        ];
        for (from, to, field) in cases {
            let fields = problem_fields(&with_local(from, to));
            assert!(fields.iter().any(|f| f == field), "{from} -> {to}: expected {field}, got {fields:?}");
        }
    }

    #[test]
    fn the_public_catalog_round_trips_through_json_and_never_says_how_a_game_runs() {
        let public = Catalog::builtin().public();
        let json = serde_json::to_string(&public).expect("serializes");
        let back: Vec<PublicGame> = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, public);
        for key in ["image", "env", "local", "command", "args", "stop_command", "ready_line"] {
            assert!(!json.contains(&format!("\"{key}\"")), "{key} in {json}");
        }
        assert!(!json.contains("itzg/"), "an image name in {json}");
        assert!(json.contains("price_cents") && json.contains("extra_ports"));
    }
}
