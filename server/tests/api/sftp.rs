//! SFTP, with real clients: OpenSSH's `sftp` (batch mode, a password through `SSH_ASKPASS` or a key made by
//! `ssh-keygen`) and paramiko. What the customer's client can do with their server's files, what the game then
//! sees, and everything else refused: other servers, other accounts, the world outside the server's files, a
//! shell, the storage beyond the plan, and an upload cut short.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::both_databases;
use crate::files::{app, content, names};
use crate::helpers::{Backend, TestApp, eventually};

both_databases!(
    sftp_reaches_a_servers_files_with_the_accounts_password_or_key_and_nothing_else,
    paramiko_reads_anywhere_writes_whole_files_and_is_held_to_the_plan
);

const PASSWORD: &str = "correct horse battery";

async fn signed_up(app: &TestApp, email: &str) -> String {
    assert_eq!(app.register(email, PASSWORD).await.status(), 201);
    app.login_token(email).await
}

/// Whether signing in was refused (rather than the connection failing some other way).
fn refused(output: &Output) -> bool {
    !output.status.success() && text(&output.stderr).contains("Permission denied")
}

/// How a client signs in.
enum Credential<'a> {
    Password(&'a str),
    Key(&'a Path),
}

/// Runs OpenSSH's `sftp` with `batch` (one command per line) in `dir`, as `user`.
fn sftp(app: &TestApp, dir: &Path, user: &str, credential: Credential<'_>, batch: &str) -> Output {
    let port = app.sftp.expect("SFTP is on").port();
    let batch_file = dir.join("batch");
    std::fs::write(&batch_file, batch).expect("batch file");
    let mut command = Command::new("sftp");
    command.current_dir(dir).args(["-P", &port.to_string()]);
    // Before `-b`, which turns on BatchMode (no password asked) unless an earlier option says otherwise.
    client_options(&mut command, dir, user, credential);
    command.arg("-b").arg(&batch_file).arg("127.0.0.1").output().expect("sftp runs")
}

/// Options every OpenSSH client here is run with: no known hosts, no agent, one way of signing in.
fn client_options(command: &mut Command, dir: &Path, user: &str, credential: Credential<'_>) {
    command
        .env_remove("SSH_AUTH_SOCK")
        .args(["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"])
        .args(["-o", "ConnectTimeout=10", "-o", "NumberOfPasswordPrompts=1", "-o", "IdentitiesOnly=yes"])
        .args(["-o", &format!("User={user}")]);
    match credential {
        Credential::Password(password) => {
            // ssh asks this program for the password (there is no terminal to type it in).
            let (askpass, secret) = (dir.join("askpass"), dir.join("password"));
            std::fs::write(&secret, format!("{password}\n")).expect("password file");
            std::fs::write(&askpass, format!("#!/bin/sh\ncat '{}'\n", secret.display())).expect("askpass");
            std::fs::set_permissions(&askpass, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
            command.env("SSH_ASKPASS", &askpass).env("SSH_ASKPASS_REQUIRE", "force").env("DISPLAY", ":0").args([
                "-o",
                "BatchMode=no",
                "-o",
                "PreferredAuthentications=password",
                "-o",
                "PubkeyAuthentication=no",
            ]);
        }
        Credential::Key(key) => {
            command.args(["-o", "PreferredAuthentications=publickey", "-o", "BatchMode=yes", "-i"]).arg(key);
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn succeeded(output: &Output) -> bool {
    output.status.success()
}

/// Bytes that are not all the same, so a piece in the wrong place shows.
fn patterned(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

async fn sftp_reaches_a_servers_files_with_the_accounts_password_or_key_and_nothing_else(backend: Backend) {
    let (app, _catalog) = app(backend).await;
    let token = signed_up(&app, "alice@example.com").await;
    let id = app.created(&token, "reader", "p").await;
    app.running(&token, &id).await;
    let user = format!("alice@example.com.{id}");

    // Password: upload, list, make a folder, move, download.
    let local = tempfile::tempdir().expect("temp dir");
    std::fs::write(local.path().join("greeting.txt"), "hello over sftp").expect("file");
    std::fs::write(local.path().join("world.bin"), patterned(300_000)).expect("file");
    let batch = "put greeting.txt\nmkdir world\nput world.bin world/level.bin\nrename world/level.bin world/region.bin\n\
                 ls -l world\nget world/region.bin back.bin\n";
    let output = sftp(&app, local.path(), &user, Credential::Password(PASSWORD), batch);
    assert!(succeeded(&output), "{}\n{}", text(&output.stdout), text(&output.stderr));
    assert!(text(&output.stdout).contains("region.bin"), "ls shows the moved file: {}", text(&output.stdout));
    assert_eq!(std::fs::read(local.path().join("back.bin")).expect("downloaded"), patterned(300_000));
    let uploaded = content(&app, &token, &id, "world/region.bin").await.bytes().await.expect("bytes");
    assert_eq!(uploaded.to_vec(), patterned(300_000), "the file manager sees what SFTP wrote");
    assert_eq!(names(&app, &token, &id, "").await, ["world", "greeting.txt"], "no temporary file is left");
    assert_eq!(names(&app, &token, &id, "world").await, ["region.bin"], "moved, not copied");
    // Absolute paths are the server's own.
    let output = sftp(
        &app,
        local.path(),
        &user,
        Credential::Password(PASSWORD),
        "get /greeting.txt absolute.txt
",
    );
    assert!(succeeded(&output), "{}", text(&output.stderr));
    assert_eq!(std::fs::read_to_string(local.path().join("absolute.txt")).expect("got"), "hello over sftp");
    app.act(&token, &id, "restart").await;
    assert!(app.log_shows(&token, &id, "greeting: hello over sftp").await, "the game reads what was uploaded");

    // Nothing outside the server's files: `..` past the root, a link the game planted (to a place it could
    // write to itself).
    std::os::unix::fs::symlink("/etc", app.game_data(&id).join("etc")).expect("link");
    let outside = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(outside.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).expect("chmod");
    std::os::unix::fs::symlink(outside.path(), app.game_data(&id).join("out")).expect("link");
    for batch in ["get ../../../../etc/hostname stolen\n", "get /etc/hostname stolen\n", "get etc/hostname stolen\n"] {
        let output = sftp(&app, local.path(), &user, Credential::Password(PASSWORD), batch);
        assert!(!succeeded(&output), "{batch:?} is refused");
        assert!(!local.path().join("stolen").exists(), "{batch:?} fetched nothing");
    }
    let output = sftp(&app, local.path(), &user, Credential::Password(PASSWORD), "put greeting.txt out/planted\n");
    assert!(!succeeded(&output), "a write through a link is refused");
    assert!(!outside.path().join("planted").exists(), "nothing was written where the link points");

    // A wrong password, another account's password, someone else's server, an unknown server: refused alike.
    let wrong = sftp(&app, local.path(), &user, Credential::Password("not the password"), "ls\n");
    assert!(refused(&wrong), "{}", text(&wrong.stderr));
    let bobs_password = "bob's own \"passphrase\"";
    assert_eq!(app.register("bob@example.com", bobs_password).await.status(), 201);
    let login = json!({ "email": "bob@example.com", "password": bobs_password });
    let bob: Value = app.post_json("/auth/login", &login).await.json().await.expect("json");
    let bob = bob["token"].as_str().expect("token").to_owned();
    let bobs_id = app.created(&bob, "reader", "p").await;
    let bob_on_alices = format!("bob@example.com.{id}");
    let bob_on_his = format!("bob@example.com.{bobs_id}");
    // (Bob first signs in as himself: after a wrong password, his sign-ins from here are limited, as on the panel.)
    let bobs_own = sftp(&app, local.path(), &bob_on_his, Credential::Password(bobs_password), "ls\n");
    assert!(succeeded(&bobs_own), "Bob reaches his own server: {}", text(&bobs_own.stderr));
    assert!(refused(&sftp(&app, local.path(), &bob_on_alices, Credential::Password(bobs_password), "ls\n")));
    let alices_password = sftp(&app, local.path(), &bob_on_his, Credential::Password(PASSWORD), "ls\n");
    assert!(refused(&alices_password), "Alice's password is not Bob's");
    let nowhere = "alice@example.com.re-000000000000";
    assert!(refused(&sftp(&app, local.path(), nowhere, Credential::Password(PASSWORD), "ls\n")));

    // A key added on the account signs in; once removed, it does not.
    let key = local.path().join("id_ed25519");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "alice@laptop", "-f"])
        .arg(&key)
        .output();
    assert!(made.expect("ssh-keygen runs").status.success());
    assert!(refused(&sftp(&app, local.path(), &user, Credential::Key(&key), "ls\n")), "not added yet");
    let public = std::fs::read_to_string(key.with_extension("pub")).expect("public key");
    let response = app
        .client
        .post(app.url("/api/account/ssh-keys"))
        .bearer_auth(&token)
        .json(&json!({ "name": "Laptop", "public_key": public }))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 201);
    let added: Value = response.json().await.expect("json");
    let listed = Command::new("ssh-keygen").arg("-lf").arg(key.with_extension("pub")).output().expect("ssh-keygen");
    let fingerprint = text(&listed.stdout).split_whitespace().nth(1).expect("fingerprint").to_owned();
    assert_eq!(added["fingerprint"], fingerprint.as_str(), "the fingerprint ssh-keygen prints");
    assert_eq!(added["algorithm"], "ssh-ed25519");
    let output = sftp(&app, local.path(), &user, Credential::Key(&key), "ls\n");
    assert!(succeeded(&output), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("greeting.txt"));
    // Alice's key is Alice's: it does not open Bob's account, on Bob's own server.
    assert!(refused(&sftp(&app, local.path(), &bob_on_his, Credential::Key(&key), "ls\n")));
    // No commands, no forwarding.
    let port = app.sftp.expect("SFTP").port().to_string();
    let ssh = |extra: &[&str]| {
        let mut ssh = Command::new("ssh");
        ssh.args(["-p", &port]).stdin(std::process::Stdio::null());
        client_options(&mut ssh, local.path(), &user, Credential::Key(&key));
        ssh.args(extra).output().expect("ssh runs")
    };
    let output = ssh(&["127.0.0.1", "echo", "shell-reached"]);
    assert!(!succeeded(&output) && !text(&output.stdout).contains("shell-reached"), "{}", text(&output.stdout));
    let http = app.address.trim_start_matches("http://").to_owned();
    let output = ssh(&["-W", &http, "127.0.0.1"]);
    assert!(!succeeded(&output), "no forwarding to the panel: {}", text(&output.stderr));

    let keys: Value = app.get_as(&bob, "/api/account/ssh-keys").await.json().await.expect("json");
    assert_eq!(keys, json!([]), "Bob sees only his own keys");
    let key_id = added["id"].as_str().expect("id");
    let url = app.url(&format!("/api/account/ssh-keys/{key_id}"));
    assert_eq!(app.client.delete(&url).bearer_auth(&bob).send().await.expect("sent").status(), 404, "not Bob's");
    // A session signed in with the key, open while the key is removed, can do nothing more.
    let script = r#"
import json, os, urllib.request, paramiko
key = paramiko.Ed25519Key.from_private_key_file(os.environ["SFTP_KEY"])
transport = paramiko.Transport(("127.0.0.1", int(os.environ["SFTP_PORT"])))
transport.connect(username=os.environ["SFTP_USER"], pkey=key)
sftp = paramiko.SFTPClient.from_transport(transport)
before = sftp.open("greeting.txt").read().decode()
headers = {"Authorization": "Bearer " + os.environ["TOKEN"]}
removed = urllib.request.urlopen(urllib.request.Request(os.environ["REMOVE"], method="DELETE", headers=headers)).status
try:
    after = sftp.open("greeting.txt").read().decode()
except IOError as error:
    after = str(error)
print(json.dumps({"before": before, "removed": removed, "after": after}))
"#;
    let env = [("SFTP_KEY", key.to_str().expect("utf-8")), ("TOKEN", token.as_str()), ("REMOVE", url.as_str())];
    let result = paramiko_with(&app, &user, script, &env);
    assert_eq!((result["before"].as_str(), result["removed"].as_u64()), (Some("hello over sftp"), Some(204)));
    assert!(result["after"].as_str().expect("after").contains("no longer valid"), "{result}");
    assert!(refused(&sftp(&app, local.path(), &user, Credential::Key(&key), "ls\n")), "a removed key is refused");
}

/// Runs `script` (Python, with paramiko) with `SFTP_PORT`, `SFTP_USER` and `SFTP_PASSWORD` set; its last line
/// of output is JSON.
fn paramiko(app: &TestApp, user: &str, script: &str) -> Value {
    paramiko_with(app, user, script, &[])
}

/// As [`paramiko`], with more of the script's environment.
fn paramiko_with(app: &TestApp, user: &str, script: &str, env: &[(&str, &str)]) -> Value {
    let output = Command::new("python3")
        .args(["-c", script])
        .env("SFTP_PORT", app.sftp.expect("SFTP").port().to_string())
        .env("SFTP_USER", user)
        .env("SFTP_PASSWORD", PASSWORD)
        .envs(env.iter().copied())
        .output()
        .expect("python3 runs");
    assert!(output.status.success(), "{}\n{}", text(&output.stdout), text(&output.stderr));
    serde_json::from_str(text(&output.stdout).lines().last().expect("output")).expect("json")
}

const CONNECT: &str = r#"
import json, os, paramiko
transport = paramiko.Transport(("127.0.0.1", int(os.environ["SFTP_PORT"])))
transport.connect(username=os.environ["SFTP_USER"], password=os.environ["SFTP_PASSWORD"])
sftp = paramiko.SFTPClient.from_transport(transport)
def attempt(work):
    try:
        work()
        return "done"
    except (IOError, OSError) as error:
        return str(error)
"#;

async fn paramiko_reads_anywhere_writes_whole_files_and_is_held_to_the_plan(backend: Backend) {
    let (app, _catalog) = app(backend).await;
    let token = signed_up(&app, "carol@example.com").await;
    let id = app.created(&token, "reader", "p").await;
    let user = format!("carol@example.com.{id}");

    let script = format!(
        r#"{CONNECT}
data = bytes((i * 7) % 251 for i in range(200000))
with sftp.open("save.bin", "wb") as f:
    f.write(data)
with sftp.open("save.bin", "rb") as f:
    f.seek(150000)
    middle = f.read(16)
    f.seek(10)
    start = f.read(4)
sftp.mkdir("old")
sftp.rename("save.bin", "old/save.bin")
result = {{
    "size": sftp.stat("old/save.bin").st_size,
    "middle": list(middle) == list(data[150000:150016]),
    "start": list(start) == list(data[10:14]),
    "listed": sorted(sftp.listdir(".")),
    "root": sftp.normalize("."),
    "up": attempt(lambda: sftp.listdir("/..")),
    "rmdir_full": attempt(lambda: sftp.rmdir("old")),
    "append": attempt(lambda: sftp.open("old/save.bin", "a").write(b"more")),
    "link": attempt(lambda: sftp.symlink("/etc/passwd", "passwd")),
    "overwrite_part": attempt(lambda: sftp.open("old/save.bin", "r+").write(b"x")),
}}
def jump():
    f = sftp.open("jumpy.bin", "wb")
    f.write(b"start")
    f.seek(100000)
    f.write(b"far away")
    f.close()
result["jump"] = attempt(jump)
sftp.mkdir("empty")
sftp.rmdir("empty")
print(json.dumps(result))
"#
    );
    let result = paramiko(&app, &user, &script);
    assert_eq!(result["size"], 200_000);
    assert_eq!((result["middle"].as_bool(), result["start"].as_bool()), (Some(true), Some(true)), "{result}");
    assert_eq!(result["listed"], json!(["old"]));
    assert_eq!(result["root"], "/", "the server's files are the client's root");
    assert!(result["up"].as_str().expect("up").contains("leaves the server's files"), "{result}");
    assert!(result["rmdir_full"].as_str().expect("rmdir").contains("not empty"), "{result}");
    assert!(result["append"].as_str().expect("append").contains("appending is not supported"), "{result}");
    assert!(result["link"].as_str().expect("link").contains("symbolic links"), "{result}");
    assert!(result["overwrite_part"].as_str().expect("part").contains("replaced whole"), "{result}");
    assert!(result["jump"].as_str().expect("jump").contains("from its start to its end"), "{result}");
    let root = app.game_data(&id);
    eventually("the refused upload's temporary file is gone", || temporaries(&root).is_empty()).await;
    assert_eq!(names(&app, &token, &id, "").await, ["old"], "nothing of the refused uploads is kept");
    let saved = content(&app, &token, &id, "old/save.bin").await.bytes().await.expect("bytes");
    assert_eq!(saved.to_vec(), patterned(200_000), "paramiko's upload, byte for byte");

    // The plan has 1 MiB: a bigger upload fails naming the storage, and leaves nothing behind.
    let script = format!(
        r#"{CONNECT}
def big():
    with sftp.open("huge.bin", "wb") as f:
        for _ in range(32):
            f.write(b"x" * 65536)
print(json.dumps({{"huge": attempt(big)}}))
"#
    );
    let result = paramiko(&app, &user, &script);
    assert!(result["huge"].as_str().expect("huge").contains("plan's storage"), "{result}");
    assert_eq!(names(&app, &token, &id, "").await, ["old"], "nothing of the refused upload is kept");

    // Two uploads side by side, each fitting alone (704 KiB beside the 200 KB kept), not together: the first to
    // close is refused (paramiko does not report a refused close, so the files tell), the other is kept, and
    // the plan is never passed.
    let script = format!(
        r#"{CONNECT}
first, second = sftp.open("first.bin", "wb"), sftp.open("second.bin", "wb")
for _ in range(11):
    first.write(b"1" * 65536)
    second.write(b"2" * 65536)
first.close()
second.close()
print(json.dumps({{"listed": sorted(sftp.listdir("."))}}))
"#
    );
    let result = paramiko(&app, &user, &script);
    assert_eq!(result["listed"], json!(["old", "second.bin"]), "{result}");
    assert_eq!(names(&app, &token, &id, "").await, ["old", "second.bin"]);
    let disk: Value = app.get_as(&token, &format!("/api/servers/{id}/disk")).await.json().await.expect("json");
    assert!(disk["used_bytes"].as_u64().expect("used") <= 1024 * 1024, "{disk}");
    let url = app.url(&format!("/api/servers/{id}/files/delete"));
    let delete = app.client.post(url).bearer_auth(&token).json(&json!({ "paths": ["second.bin"] }));
    assert_eq!(delete.send().await.expect("sent").status(), 204);

    // An upload cut short (the client goes away without closing the file) leaves the file as it was.
    let script = format!(
        r#"{CONNECT}
f = sftp.open("old/save.bin", "wb")
f.write(b"half of a new save")
f.flush()
transport.close()
print(json.dumps({{"cut": True}}))
"#
    );
    paramiko(&app, &user, &script);
    let data = app.game_data(&id).join("old");
    eventually("the cut upload's temporary file is gone", || temporaries(&data).is_empty()).await;
    let kept = content(&app, &token, &id, "old/save.bin").await.bytes().await.expect("bytes");
    assert_eq!(kept.to_vec(), patterned(200_000), "the earlier content stays");
}

/// The temporary files of writes under way in `dir`.
fn temporaries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().contains(".spawnpoint-"))
                .collect()
        })
        .unwrap_or_default()
}
