//! Backups in S3-compatible storage: moto's S3 server on loopback, which checks every request's SigV4
//! signature. A good key stores and restores; a wrong secret, a missing bucket or a store that goes away
//! mid-upload fail the backup with a clear reason, and nothing half-written is listed as good.

use serde_json::{Value, json};
use server::backups::store::{BackupTarget, S3Target};
use test_support::s3::Moto;

use crate::backups::{app, backed_up, noise, put, read, restored};
use crate::both_databases;
use crate::helpers::Backend;

both_databases!(backups_in_s3_are_signed_stored_and_restored, a_refused_or_failing_store_fails_the_backup);

fn target(moto: &Moto, endpoint: &str, bucket: &str, secret: &str) -> BackupTarget {
    BackupTarget::S3(S3Target {
        bucket: bucket.to_owned(),
        prefix: "spawnpoint/backups".into(),
        endpoint: Some(endpoint.to_owned()),
        region: Some("us-east-1".into()),
        access_key_id: Some(moto.access_key_id.clone()),
        secret_access_key: Some(secret.to_owned().into()),
        allow_http: true,
    })
}

async fn backups_in_s3_are_signed_stored_and_restored(backend: Backend) {
    server::install_crypto_provider();
    let Some(moto) = Moto::start("worlds").await else { return };
    let store = target(&moto, &moto.endpoint, "worlds", &moto.secret_access_key);
    let (app, _dir) = app(backend, |settings| settings.backups = store).await;
    let token = app.signed_up("owner@example.com").await;
    let id = app.created(&token, "saver", "p").await;
    app.running(&token, &id).await;
    put(&app, &token, &id, "world.txt", "v1").await;
    // Bigger than one part (8 MiB) even compressed, so the archive goes up in several.
    put(&app, &token, &id, "noise.txt", &noise(15_000_000)).await;

    let backup = backed_up(&app, &token, &id, json!({ "name": "to s3" })).await;
    assert_eq!(backup["status"], "ok", "{backup}");
    let bid = backup["id"].as_str().expect("id").to_owned();
    let download = app.get_as(&token, &format!("/api/servers/{id}/backups/{bid}/download")).await;
    let archive = download.bytes().await.expect("bytes");
    assert_eq!(backup["size"].as_u64(), Some(archive.len() as u64), "what the store holds is what was recorded");

    put(&app, &token, &id, "world.txt", "v2").await;
    let done = restored(&app, &token, &id, &bid).await;
    assert_eq!(done["restore_error"], Value::Null, "{done}");
    assert_eq!(read(&app, &token, &id, "world.txt").await.text().await.expect("text"), "v1");
}

async fn a_refused_or_failing_store_fails_the_backup(backend: Backend) {
    server::install_crypto_provider();
    let Some(moto) = Moto::start("worlds").await else { return };
    for (endpoint, bucket, secret, reason) in [
        (moto.endpoint.clone(), "worlds", "not-the-secret", "refused Spawnpoint's credentials"),
        (moto.endpoint.clone(), "missing", moto.secret_access_key.as_str(), "no such bucket"),
    ] {
        let store = target(&moto, &endpoint, bucket, secret);
        let (app, _dir) = app(backend, |settings| settings.backups = store).await;
        let token = app.signed_up("owner@example.com").await;
        let id = app.created(&token, "saver", "p").await;
        app.running(&token, &id).await;
        let backup = backed_up(&app, &token, &id, json!({})).await;
        assert_eq!(backup["status"], "failed", "{backup}");
        let error = backup["error"].as_str().expect("a reason");
        assert!(error.contains(reason), "{error}");
        assert!(!error.contains(secret) && !error.contains(&moto.access_key_id), "no credentials in what is shown");
        assert_eq!((backup["size"].clone(), backup["sha256"].clone()), (Value::Null, Value::Null));
        let restore = app
            .client
            .post(app.url(&format!("/api/servers/{id}/backups/{}/restore", backup["id"].as_str().expect("id"))));
        assert_eq!(
            restore.bearer_auth(&token).send().await.expect("sent").status(),
            409,
            "a failed backup restores nothing"
        );
    }

    // A store that goes away mid-upload: a proxy in front of moto that cuts every connection once some of the
    // archive has passed.
    let proxy = test_support::s3::CuttingProxy::start(&moto.endpoint, 3 * 1024 * 1024).await;
    let store = target(&moto, &proxy.endpoint, "worlds", &moto.secret_access_key);
    let (app, _dir) = app(backend, |settings| settings.backups = store).await;
    let token = app.signed_up("owner@example.com").await;
    let id = app.created(&token, "saver", "p").await;
    app.running(&token, &id).await;
    put(&app, &token, &id, "noise.txt", &noise(6_000_000)).await;
    let backup = backed_up(&app, &token, &id, json!({})).await;
    assert_eq!(backup["status"], "failed", "{backup}");
    assert!(backup["error"].as_str().expect("a reason").contains("backup store failed"), "{backup}");
    assert!(proxy.cut(), "the store went away during the upload");
}
