//! Real games on the single box, at the driver: install steps against loopback fakes of PaperMC's and Mojang's
//! download services, games that outlive the panel, and the isolation a game gets (its own user, a clean
//! environment, the plan's memory limit).

use std::time::Duration;

use catalog::Catalog;
use catalog::gameserver::InstallProgress;
use server::orchestrator::local::LocalDriver;
use server::orchestrator::{Orchestrator, Phase, ServerSpec};
use test_support::downloads::FakeDownloads;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

use crate::helpers::alive;
use crate::local_driver::{Book, WAIT, config, driver, logs_contain, next_phase, port, shell_game, spec};

/// A game installed by Paper or Mojang steps; its "jar" is a shell script, so that the install steps are what
/// is tested here (the real jar and game are in the Minecraft test).
fn installed_game() -> Catalog {
    Catalog::from_yaml(
        r#"
games:
  - id: paperish
    name: Paperish
    image: none
    port: { port: 1, protocol: TCP }
    stop_command: stop
    variables:
      - { key: SERVER_TYPE, name: Type, type: select, options: [paper, vanilla], default: paper, reinstall: true }
      - { key: VERSION, name: Version, type: text, max_len: 10, default: "1.20.4", reinstall: true }
      - { key: MOTD, name: MOTD, type: text, max_len: 40, default: "hello" }
      - { key: MAX_PLAYERS, name: Max players, type: number, min: 1, max: plan, default: 20 }
    local:
      command: sh
      args: ["server.jar"]
      ready_line: Done (
      install:
        - { when: { SERVER_TYPE: paper }, paper: { version: "{VERSION}", to: server.jar } }
        - { when: { SERVER_TYPE: vanilla }, mojang: { version: "{VERSION}", to: server.jar } }
      config_files:
        - path: server.properties
          format: properties
          set: { server-port: "{port}", motd: "{MOTD}", max-players: "{MAX_PLAYERS}" }
    plans: [{ id: p, name: P, players: { min: 1, max: 5 }, cpu: 500m, memory: 256Mi, storage: 1Gi, price_cents: 1 }]
"#,
    )
    .expect("valid test catalog")
}

/// A "server jar" that says which build it is, is ready, and runs until told to stop.
fn script(build: &str) -> Vec<u8> {
    format!("echo \"this is {build}\"; echo 'Done (0.1s)! For help, type \"help\"'; while read line; do [ \"$line\" = stop ] && exit 0; done\n")
        .into_bytes()
}

fn driver_for(dir: &tempfile::TempDir, downloads: &FakeDownloads) -> LocalDriver {
    let mut config = config(Duration::from_secs(5));
    config.sources.paper_api = downloads.paper_api();
    config.sources.mojang_manifest = downloads.mojang_manifest();
    LocalDriver::new(dir.path(), config, std::sync::Arc::new(Book))
}

fn with(spec: &ServerSpec, pairs: &[(&str, &str)]) -> ServerSpec {
    let mut next = spec.clone();
    for (key, value) in pairs {
        next.variables.0.insert((*key).to_owned(), (*value).to_owned());
    }
    next.generation += 1;
    next
}

/// Every phase of the run of `spec`'s generation up to the first that is not an install's progress (what an
/// earlier run reports on its way out is not this run's).
async fn through_install(
    events: &mut tokio::sync::broadcast::Receiver<server::orchestrator::Observed>,
    spec: &ServerSpec,
) -> (Vec<InstallProgress>, Phase) {
    let mut progress = Vec::new();
    let wait = async {
        loop {
            match events.recv().await {
                Ok(observed) if observed.id == spec.id && observed.generation == spec.generation => {
                    match observed.phase {
                        Phase::Installing(step) => progress.push(step),
                        other => return other,
                    }
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => panic!("event stream closed"),
            }
        }
    };
    let phase = tokio::time::timeout(WAIT, wait).await.expect("a phase change in time");
    (progress, phase)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paper_and_mojang_installs_run_once_fail_clearly_and_configure_the_game() {
    let downloads = FakeDownloads::start().await;
    downloads.publish_file("paper-499.jar", script("paper 499"));
    downloads.publish_file("paper-500.jar", script("paper 500 beta"));
    downloads.publish_file("vanilla.jar", script("vanilla 1.20.4"));
    downloads.paper_build("1.20.4", 499, "STABLE", "paper-499.jar", false);
    downloads.paper_build("1.20.4", 500, "BETA", "paper-500.jar", false);
    downloads.paper_build("1.20.1", 300, "STABLE", "paper-499.jar", true);
    downloads.mojang_version("1.20.4", "vanilla.jar", 17);
    let dir = tempfile::tempdir().expect("temp dir");
    let driver = driver_for(&dir, &downloads);
    let catalog = installed_game();
    let spec = spec(&catalog, "paperish", "p", "u1-pa-instal");
    let data = dir.path().join("servers/u1-pa-instal/data");
    let mut events = driver.events();

    // First start: the newest stable build is installed (not the newer beta), with progress, then the game runs
    // with its config file set.
    driver.ensure_running(&spec).await.expect("starts");
    let (progress, phase) = through_install(&mut events, &spec).await;
    assert!(matches!(phase, Phase::Ready { .. }), "{phase:?}");
    let size = script("paper 499").len() as u64;
    assert!(progress.iter().all(|p| p.step == "paper"), "{progress:?}");
    assert!(progress.iter().any(|p| p.done_bytes == size && p.total_bytes == Some(size)), "{progress:?}");
    assert!(logs_contain(&driver, &spec.id, "this is paper 499").await);
    assert!(logs_contain(&driver, &spec.id, "paper 1.20.4 build 499").await, "the install's output is on the console");
    let properties = std::fs::read_to_string(data.join("server.properties")).expect("written");
    assert!(properties.contains(&format!("server-port={}", port(&spec))), "{properties}");
    assert!(
        properties.contains("motd=hello") && properties.contains("max-players=5"),
        "bounded by the plan: {properties}"
    );

    // The customer's own keys survive; a second start installs nothing.
    std::fs::write(data.join("server.properties"), format!("{properties}view-distance=4\n")).expect("edit");
    driver.stop(&spec.id).await.expect("stops");
    let requests = downloads.requests().len();
    let again = ServerSpec { generation: spec.generation + 1, ..spec.clone() };
    driver.ensure_running(&again).await.expect("starts again");
    assert!(matches!(through_install(&mut events, &again).await, (p, Phase::Ready { .. }) if p.is_empty()));
    assert_eq!(downloads.requests().len(), requests, "nothing fetched again");
    let properties = std::fs::read_to_string(data.join("server.properties")).expect("kept");
    assert!(properties.contains("view-distance=4"), "{properties}");

    // A version PaperMC does not have: the install fails naming the step and the cause, and nothing runs.
    let missing = with(&again, &[("VERSION", "9.9")]);
    driver.ensure_running(&missing).await.expect("asked");
    match through_install(&mut events, &missing).await.1 {
        Phase::InstallFailed { reason } => assert_eq!(reason, "paper: PaperMC has no paper version 9.9"),
        other => panic!("expected a failed install, got {other:?}"),
    }
    // A listing whose checksum does not match the file: refused, and no partial file is left.
    let lying = with(&missing, &[("VERSION", "1.20.1")]);
    driver.ensure_running(&lying).await.expect("asked");
    match through_install(&mut events, &lying).await.1 {
        Phase::InstallFailed { reason } => {
            assert!(reason.starts_with("paper: the file from") && reason.contains("expected 0000"), "{reason}");
        }
        other => panic!("expected a failed install, got {other:?}"),
    }
    let leftovers: Vec<_> = std::fs::read_dir(&data).expect("data").flatten().map(|e| e.file_name()).collect();
    assert!(!leftovers.iter().any(|name| name.to_string_lossy().ends_with(".part")), "{leftovers:?}");

    // Vanilla, from Mojang's manifest (SHA-1 checked), replaces the jar.
    let vanilla = with(&lying, &[("VERSION", "1.20.4"), ("SERVER_TYPE", "vanilla")]);
    driver.ensure_running(&vanilla).await.expect("asked");
    assert!(matches!(through_install(&mut events, &vanilla).await.1, Phase::Ready { .. }));
    assert!(logs_contain(&driver, &spec.id, "this is vanilla 1.20.4").await);

    // A reinstall installs again though nothing else changed.
    driver.stop(&spec.id).await.expect("stops");
    let reinstall = ServerSpec { install_generation: 1, generation: vanilla.generation + 1, ..vanilla.clone() };
    driver.ensure_running(&reinstall).await.expect("asked");
    let (progress, phase) = through_install(&mut events, &reinstall).await;
    assert!(!progress.is_empty() && matches!(phase, Phase::Ready { .. }), "{progress:?} {phase:?}");
    driver.destroy(&spec.id).await.expect("destroyed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_game_outlives_its_panel_and_the_next_panel_takes_it_over() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = spec(&Catalog::builtin(), "demo", "tiny", "u1-de-outliv");
    let first = driver(&dir, Duration::from_secs(5));
    let mut events = first.events();
    first.ensure_running(&spec).await.expect("starts");
    assert!(matches!(next_phase(&mut events, &spec.id).await, Phase::Ready { .. }));
    let mut player = BufReader::new(TcpStream::connect(("127.0.0.1", port(&spec))).await.expect("the game listens"));
    player.get_mut().write_all(b"REQUEST_MATCH 1\n").await.expect("sent");
    let mut answer = String::new();

    // The panel goes without a word (a crash): its game does not.
    drop(first);
    let second = driver(&dir, Duration::from_secs(5));
    second.adopt().await;
    let observed = second.phase(&spec.id).await.expect("taken over");
    assert_eq!(observed.generation, spec.generation);
    let ready = async {
        while !matches!(second.phase(&spec.id).await.map(|o| o.phase), Some(Phase::Ready { .. })) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(WAIT, ready).await.expect("the game is seen ready again");
    // The same process: the player is still connected, and no second game was started for it.
    second.ensure_running(&spec).await.expect("left alone");
    assert_eq!(second.observe().await.len(), 1);
    // The match it asked for before the panel went is still on: the same game, the same connection.
    player.get_mut().write_all(b"GET_STATE\n").await.expect("sent");
    let state = async {
        loop {
            answer.clear();
            player.read_line(&mut answer).await.expect("the player is still connected");
            if answer.starts_with("STATE") {
                return answer.trim().to_owned();
            }
        }
    };
    let state = tokio::time::timeout(WAIT, state).await.expect("in time");
    assert_eq!(state, "STATE running", "the player stayed connected to the same game");
    second.send_input(&spec.id, "say still here").await.expect("typed");
    assert!(logs_contain(&second, &spec.id, "[Server] still here").await, "the console works again");

    second.stop(&spec.id).await.expect("stops");
    assert!(TcpStream::connect(("127.0.0.1", port(&spec))).await.is_err(), "stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_shutdown_stops_games_unless_told_to_keep_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let catalog =
        shell_game("echo $$ > game.pid; echo ready now; while read line; do [ \"$line\" = stop ] && exit 0; done");
    let spec = spec(&catalog, "shell", "p", "u1-sh-keepit");
    let pid = || {
        std::fs::read_to_string(dir.path().join("servers/u1-sh-keepit/data/game.pid")).expect("pid").trim().to_owned()
    };
    let mut keeping = config(Duration::from_secs(2));
    keeping.keep_games = true;
    let first = LocalDriver::new(dir.path(), keeping, std::sync::Arc::new(Book));
    let mut events = first.events();
    first.ensure_running(&spec).await.expect("starts");
    assert!(matches!(next_phase(&mut events, &spec.id).await, Phase::Ready { .. }));
    first.shutdown().await;
    assert!(alive(&pid()), "SPAWNPOINT_KEEP_GAMES leaves the game running");

    let second = driver(&dir, Duration::from_secs(2));
    second.adopt().await;
    assert!(second.phase(&spec.id).await.is_some());
    second.shutdown().await;
    assert!(!alive(&pid()), "by default a clean shutdown stops the game");
}

/// Whether this machine can isolate games (root, cgroups); outside CI a test that needs it says why it skips.
fn isolation_available(driver: &LocalDriver) -> bool {
    let limitations = driver.limitations();
    if limitations.is_empty() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("under CI games must be isolated, and here: {limitations:?}");
    }
    eprintln!("skipped: {}", limitations.join("; "));
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_game_sees_none_of_the_panels_secrets_nor_another_servers_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("spawnpoint.db"), "the panel's database").expect("db");
    let driver = driver(&dir, Duration::from_secs(2));
    if !isolation_available(&driver) {
        return;
    }
    let mut events = driver.events();
    let neighbour = shell_game("echo mine > private.txt; echo ready now; while read line; do :; done");
    let neighbour = spec(&neighbour, "shell", "p", "u1-sh-neighb");
    driver.ensure_running(&neighbour).await.expect("starts");
    assert!(matches!(next_phase(&mut events, &neighbour.id).await, Phase::Ready { .. }));

    let prying = shell_game(
        "echo \"uid=$(id -u)\"; env | sed 's/^/env: /'; \
         cat ../../../spawnpoint.db && echo READ-THE-DATABASE; ls ../../ && echo LISTED-THE-SERVERS; \
         cat ../../u1-sh-neighb/data/private.txt && echo READ-THE-NEIGHBOUR; echo ready now; while read line; do :; done",
    );
    let prying = spec(&prying, "shell", "p", "u1-sh-prying");
    driver.ensure_running(&prying).await.expect("starts");
    assert!(matches!(next_phase(&mut events, &prying.id).await, Phase::Ready { .. }));
    let lines = driver.logs(&prying.id, 200).await.expect("logs");
    let uid = lines.iter().find_map(|l| l.strip_prefix("uid=")).unwrap_or_else(|| panic!("its uid in {lines:#?}"));
    assert_ne!(uid, "0", "a game never runs as root");
    let names: Vec<&str> =
        lines.iter().filter_map(|l| l.strip_prefix("env: ")).filter_map(|l| l.split('=').next()).collect();
    assert!(names.contains(&"PORT"), "{names:?}");
    for name in &names {
        assert!(["PATH", "HOME", "LANG", "PORT", "PWD", "SHLVL", "_", "OLDPWD"].contains(name), "the game got {name}");
    }
    for marker in ["READ-THE-DATABASE", "LISTED-THE-SERVERS", "READ-THE-NEIGHBOUR"] {
        assert!(!lines.iter().any(|l| l == marker), "{marker}: {lines:#?}");
    }
    driver.destroy(&prying.id).await.expect("destroyed");
    driver.destroy(&neighbour.id).await.expect("destroyed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_game_over_its_plans_memory_is_killed_and_says_so() {
    let dir = tempfile::tempdir().expect("temp dir");
    let driver = driver(&dir, Duration::from_secs(2));
    if !isolation_available(&driver) {
        return;
    }
    // The shell holds what it reads in memory: 120 MB against the plan's 64 MiB.
    let catalog = shell_game("echo ready now; x=$(head -c 120000000 /dev/zero | tr '\\0' a); echo survived");
    let spec = spec(&catalog, "shell", "p", "u1-sh-hungry");
    let mut events = driver.events();
    driver.ensure_running(&spec).await.expect("starts");
    assert!(matches!(next_phase(&mut events, &spec.id).await, Phase::Ready { .. }));
    match next_phase(&mut events, &spec.id).await {
        Phase::Exited { reason } => assert_eq!(reason, "the game ran out of memory (plan limit 64 MiB)"),
        other => panic!("expected an exit, got {other:?}"),
    }
    // It has ended, so its output is all there.
    let lines = driver.logs(&spec.id, 100).await.expect("logs");
    assert!(!lines.iter().any(|line| line == "survived"), "{lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_a_game_plants_lead_the_panel_nowhere() {
    let downloads = FakeDownloads::start().await;
    downloads.publish_file("game.sh", b"echo ready now; while read line; do :; done\n".to_vec());
    let sha256 = {
        use sha2::Digest as _;
        sha2::Sha256::digest(b"echo ready now; while read line; do :; done\n")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let driver = driver_for(&dir, &downloads);
    if !isolation_available(&driver) {
        return;
    }
    // Files of the panel's own, outside any server, which a game must not reach through the panel.
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).expect("outside");
    for name in ["victim-download", "victim-config"] {
        std::fs::write(outside.join(name), "the panel's own\n").expect("victim");
    }
    let catalog = Catalog::from_yaml(&format!(
        r#"
games:
  - id: planter
    name: Planter
    image: none
    port: {{ port: 1, protocol: TCP }}
    local:
      command: sh
      args: ["game.sh"]
      ready_line: ready now
      install:
        - download: {{ url: "{}/files/game.sh", sha256: "{sha256}", to: game.sh }}
      config_files:
        - {{ path: game.properties, format: properties, set: {{ port: "{{port}}" }} }}
    plans: [{{ id: p, name: P, players: {{ min: 1, max: 1 }}, cpu: 100m, memory: 64Mi, storage: 1Gi, price_cents: 1 }}]
"#,
        downloads.paper_api()
    ))
    .expect("valid test catalog");
    let spec = spec(&catalog, "planter", "p", "u1-pl-links1");
    let data = dir.path().join("servers/u1-pl-links1/data");
    let mut events = driver.events();
    driver.ensure_running(&spec).await.expect("starts");
    assert!(matches!(through_install(&mut events, &spec).await.1, Phase::Ready { .. }));
    driver.stop(&spec.id).await.expect("stops");

    // What a game could leave behind: its next download's temporary name and its config file, as links.
    std::fs::remove_file(data.join("game.properties")).expect("config file");
    std::os::unix::fs::symlink(outside.join("victim-download"), data.join("game.part")).expect("link");
    std::os::unix::fs::symlink(outside.join("victim-config"), data.join("game.properties")).expect("link");
    let reinstall = ServerSpec { install_generation: 1, generation: 1, ..spec.clone() };
    driver.ensure_running(&reinstall).await.expect("asked");
    match through_install(&mut events, &reinstall).await.1 {
        Phase::Exited { reason } => assert!(reason.contains("symbolic link"), "{reason}"),
        other => panic!("a config file that is a link is refused, not written through: {other:?}"),
    }
    for name in ["victim-download", "victim-config"] {
        assert_eq!(std::fs::read_to_string(outside.join(name)).expect("still there"), "the panel's own\n", "{name}");
    }
}

/// A stand-in for SteamCMD (which cannot be installed here): its command line (`+force_install_dir DIR +login
/// anonymous +app_update APP validate +quit`), its progress lines and its last word, as the real one prints them.
/// With `fail`, it stops as SteamCMD does when a download breaks off: no success line, exit code 8.
fn fake_steamcmd(dir: &std::path::Path, fail: bool) -> String {
    use std::os::unix::fs::PermissionsExt as _;
    let tools = dir.join("tools");
    std::fs::create_dir_all(&tools).expect("tools");
    let path = tools.join(if fail { "steamcmd-failing" } else { "steamcmd" });
    let end = if fail {
        "echo \"Error! App '$app' state is 0x602 after update job.\"; exit 8"
    } else {
        "printf 'echo ready now; while read line; do :; done\\n' > \"$dir/game.sh\"; echo \"Success! App '$app' fully installed.\""
    };
    let script = format!(
        "#!/bin/sh\ndir=''; app=''; login=''\n\
         while [ $# -gt 0 ]; do case \"$1\" in +force_install_dir) dir=$2; shift;; +login) login=$2; shift;; \
         +app_update) app=$2; shift;; esac; shift; done\n\
         [ \"$login\" = anonymous ] || {{ echo 'Login Failure: No Connection'; exit 5; }}\n\
         echo \"Steam Console Client (c) Valve Corporation - version 1716426913\"\n\
         echo \" Update state (0x61) downloading, progress: 40.00 (400 / 1000)\"\n\
         echo \" Update state (0x61) downloading, progress: 100.00 (1000 / 1000)\"\n\
         {end}\n"
    );
    std::fs::write(&path, script).expect("script");
    for at in [&tools, &path] {
        std::fs::set_permissions(at, std::fs::Permissions::from_mode(0o755)).expect("mode");
    }
    path.to_string_lossy().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steam_game_is_installed_by_steamcmd_with_its_progress_and_its_failures() {
    let catalog = Catalog::from_yaml(
        r#"
games:
  - id: steamy
    name: Steamy
    image: none
    port: { port: 1, protocol: UDP }
    local:
      command: sh
      args: ["game.sh"]
      ready_line: ready now
      install:
        - steamcmd: { app: 896660 }
    plans: [{ id: p, name: P, players: { min: 1, max: 1 }, cpu: 100m, memory: 64Mi, storage: 1Gi, price_cents: 1 }]
"#,
    )
    .expect("valid test catalog");
    for fail in [false, true] {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = config(Duration::from_secs(2));
        config.sources.steamcmd = fake_steamcmd(dir.path(), fail);
        let driver = LocalDriver::new(dir.path(), config, std::sync::Arc::new(Book));
        let game = catalog.game("steamy").expect("steamy");
        assert_eq!(driver.check_runnable(game, None), Ok(()), "SteamCMD is there");
        let spec = spec(&catalog, "steamy", "p", if fail { "u1-st-broken" } else { "u1-st-steamy" });
        let mut events = driver.events();
        driver.ensure_running(&spec).await.expect("asked");
        let (progress, phase) = through_install(&mut events, &spec).await;
        assert!(
            progress.iter().any(|p| p.step == "steamcmd" && p.done_bytes == 400 && p.total_bytes == Some(1000)),
            "SteamCMD's own progress lines: {progress:?}"
        );
        match (fail, phase) {
            (false, Phase::Ready { .. }) => {
                assert!(
                    logs_contain(&driver, &spec.id, "Success! App '896660' fully installed.").await,
                    "on the console"
                );
            }
            (true, Phase::InstallFailed { reason }) => assert_eq!(reason, "steamcmd: SteamCMD exited with code 8"),
            (fail, other) => panic!("fail={fail}: {other:?}"),
        }
        driver.destroy(&spec.id).await.expect("destroyed");
    }
    let mut config = config(Duration::from_secs(2));
    config.sources.steamcmd = "/nonexistent/steamcmd".into();
    let dir = tempfile::tempdir().expect("temp dir");
    let driver = LocalDriver::new(dir.path(), config, std::sync::Arc::new(Book));
    let refused = driver.check_runnable(catalog.game("steamy").expect("steamy"), None);
    assert_eq!(refused, Err("needs SteamCMD (`steamcmd`) on the host".to_owned()));
}
