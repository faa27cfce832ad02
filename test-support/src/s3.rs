//! A real S3-protocol server on loopback for the backup tests: moto's (PyPI `moto[server]`), which checks SigV4
//! signatures once its first requests, which make an IAM user with an access key and a bucket, are spent.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Requests moto serves before it checks signatures: the setup below, exactly.
const SETUP_REQUESTS: u32 = 4;

/// A running moto server with a bucket and a key allowed to use it; stopped when dropped.
pub struct Moto {
    child: Child,
    pub endpoint: String,
    pub bucket: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// Starts moto with a user, its key and `bucket`; `None`, with the reason printed, when moto is not
    /// installed outside CI (under `CI=true` that is a failure: the test command installs it). The process's
    /// rustls provider must be installed first (the server's `install_crypto_provider`).
    pub async fn start(bucket: &str) -> Option<Self> {
        let installed = Command::new("python3")
            .args(["-c", "import moto.server"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !installed {
            if std::env::var("CI").is_ok_and(|ci| ci == "true") {
                panic!("moto (PyPI moto[server]) is needed under CI and is not installed");
            }
            eprintln!("skipped: moto is not installed (python3 -m pip install 'moto[server]')");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).ok()?;
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", SETUP_REQUESTS.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto starts");
        let endpoint = format!("http://127.0.0.1:{port}");
        let mut moto = Self {
            child,
            endpoint,
            bucket: bucket.to_owned(),
            access_key_id: String::new(),
            secret_access_key: String::new(),
        };
        let http = reqwest::Client::new();
        // Its own API does not count against the unchecked requests.
        let mut up = false;
        for _ in 0..300 {
            if http.get(format!("{}/moto-api/", moto.endpoint)).send().await.is_ok_and(|r| r.status().is_success()) {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(up, "moto never answered on {}", moto.endpoint);
        moto.set_up(&http).await;
        Some(moto)
    }

    /// The user, its policy (moto refuses a user without one), its key and the bucket: four requests.
    async fn set_up(&mut self, http: &reqwest::Client) {
        // While the unchecked requests last, any signature will do; the credential's scope picks IAM.
        let auth =
            "AWS4-HMAC-SHA256 Credential=setup/20240101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0";
        let iam = |form: String| {
            let request = http
                .post(format!("{}/", self.endpoint))
                .header("Authorization", auth)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(format!("Version=2010-05-08&{form}"));
            async move {
                let response = request.send().await.expect("moto answers");
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                assert!(status.is_success(), "moto IAM setup: {status} {text}");
                text
            }
        };
        let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
        iam("Action=CreateUser&UserName=backups".into()).await;
        iam(format!("Action=PutUserPolicy&UserName=backups&PolicyName=s3&PolicyDocument={}", encode(policy))).await;
        let key = iam("Action=CreateAccessKey&UserName=backups".into()).await;
        let between = |open: &str, close: &str| {
            key.split(open)
                .nth(1)
                .and_then(|rest| rest.split(close).next())
                .expect("the key is in the answer")
                .to_owned()
        };
        self.access_key_id = between("<AccessKeyId>", "</AccessKeyId>");
        self.secret_access_key = between("<SecretAccessKey>", "</SecretAccessKey>");
        let bucket = http.put(format!("{}/{}", self.endpoint, self.bucket)).send().await.expect("moto answers");
        assert!(bucket.status().is_success(), "creating the bucket: {}", bucket.status());
    }
}

/// Form encoding of a policy document.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A TCP proxy to a store that, once `limit` bytes have gone towards it, cuts every connection and takes no
/// more: a store failing in the middle of an upload.
pub struct CuttingProxy {
    pub endpoint: String,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl CuttingProxy {
    pub async fn start(upstream: &str, limit: u64) -> Self {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        let (cut, sent) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let watching = cut.clone();
        let task = tokio::spawn(async move {
            let (closed, _) = tokio::sync::watch::channel(false);
            let closed = Arc::new(closed);
            while let Ok((client, _)) = listener.accept().await {
                if watching.load(Ordering::SeqCst) {
                    continue; // dropped at once
                }
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else { continue };
                let (cut, sent, closed) = (watching.clone(), sent.clone(), closed.clone());
                tokio::spawn(async move {
                    let mut stop = closed.subscribe();
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let towards = async {
                        let mut buffer = vec![0u8; 16 * 1024];
                        loop {
                            let n = tokio::io::AsyncReadExt::read(&mut client_read, &mut buffer).await.unwrap_or(0);
                            if n == 0 {
                                return;
                            }
                            if sent.fetch_add(n as u64, Ordering::SeqCst) + n as u64 > limit {
                                cut.store(true, Ordering::SeqCst);
                                let _ = closed.send(true);
                                return;
                            }
                            if tokio::io::AsyncWriteExt::write_all(&mut server_write, &buffer[..n]).await.is_err() {
                                return;
                            }
                        }
                    };
                    let back = tokio::io::copy(&mut server_read, &mut client_write);
                    tokio::select! {
                        () = towards => {}
                        _ = back => {}
                        _ = stop.wait_for(|closed| *closed) => {}
                    }
                });
            }
        });
        Self { endpoint, cut, task }
    }

    /// Whether it has cut the store off.
    pub fn cut(&self) -> bool {
        self.cut.load(std::sync::atomic::Ordering::SeqCst)
    }
}
