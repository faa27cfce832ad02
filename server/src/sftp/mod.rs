//! SFTP: a server's files for any SFTP client (FileZilla, WinSCP, `sftp`), as in Pterodactyl's Wings.
//!
//! The username is `<account email>.<server id>`; the account signs in with its password (rate-limited like
//! signing in to the panel) or with one of the SSH keys added on its account page, and reaches that server's
//! files if it may on the panel. Everything after that goes through the file manager ([`session`]). Nothing but
//! the `sftp` subsystem is offered: no shell, no commands, no forwarding.
//!
//! A connection gets one password attempt (russh's rule: a guess costs a new connection and its key exchange),
//! ten key offers and 30 s to sign in; at most 256 are served at once.

pub mod session;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use catalog::ServerId;
use catalog::account::{SftpAccess, User};
use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{PrivateKey, PublicKey};
use russh::server::{Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, MethodKind, MethodSet, SshId};
use tokio::net::TcpListener;

use crate::auth::AuthService;
use crate::auth::token::write_owner_only;
use crate::config::SftpSettings;
use crate::files::FileService;

/// Sessions one connection may open in its life.
const MAX_SESSIONS: usize = 8;
/// Connections served at once; past them, a new one is closed at once.
const MAX_CONNECTIONS: usize = 256;
/// How long a connection may take to sign in.
const SIGN_IN_TIME: Duration = Duration::from_secs(30);
/// Public keys one connection may offer (each is a database lookup).
const MAX_KEY_OFFERS: usize = 10;

/// The SFTP endpoint, bound and ready to serve.
pub struct Sftp {
    listener: TcpListener,
    config: Arc<russh::server::Config>,
}

impl Sftp {
    /// Binds the configured address with the configured (or kept, or new) host key; `None` when SFTP is off.
    pub async fn bind(settings: &SftpSettings, data_dir: &Path) -> anyhow::Result<Option<Self>> {
        let Some(addr) = settings.addr else { return Ok(None) };
        let key = host_key(settings.host_key.as_deref(), data_dir)?;
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("while binding SFTP to {addr} (SPAWNPOINT_SFTP_ADDR; `off` for no SFTP)"))?;
        let config = russh::server::Config {
            server_id: SshId::Standard("SSH-2.0-Spawnpoint".into()),
            methods: MethodSet::from(&[MethodKind::PublicKey, MethodKind::Password][..]),
            // Every refusal takes as long, so that timing tells nothing; OpenSSH's first "none" probe is no guess.
            auth_rejection_time: Duration::from_secs(1),
            auth_rejection_time_initial: Some(Duration::ZERO),
            max_auth_attempts: 6,
            keys: vec![key],
            inactivity_timeout: Some(Duration::from_secs(600)),
            ..Default::default()
        };
        Ok(Some(Self { listener, config: Arc::new(config) }))
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until the task is aborted (open sessions end with the process).
    pub fn start(self, auth: Arc<AuthService>, files: Arc<FileService>) -> tokio::task::JoinHandle<()> {
        let connections = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        tokio::spawn(async move {
            loop {
                let (socket, peer) = match self.listener.accept().await {
                    Ok(accepted) => accepted,
                    // Out of file descriptors, say: that passes, so accepting goes on after a breath.
                    Err(error) => {
                        tracing::warn!(%error, "SFTP could not accept a connection");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                };
                let Ok(permit) = connections.clone().try_acquire_owned() else {
                    tracing::warn!(peer = %peer, "SFTP connection refused: {MAX_CONNECTIONS} are open");
                    continue;
                };
                let signed_in = Arc::new(AtomicBool::new(false));
                let connection = Connection {
                    peer: peer.ip(),
                    auth: auth.clone(),
                    files: files.clone(),
                    signed_in: None,
                    admitted: signed_in.clone(),
                    channels: HashMap::new(),
                    sessions: 0,
                    offers: 0,
                };
                tokio::spawn(serve(self.config.clone(), socket, connection, signed_in, permit));
            }
        })
    }
}

/// One connection, ended if it has not signed in within [`SIGN_IN_TIME`].
async fn serve(
    config: Arc<russh::server::Config>,
    socket: tokio::net::TcpStream,
    connection: Connection,
    signed_in: Arc<AtomicBool>,
    _permit: tokio::sync::OwnedSemaphorePermit,
) {
    let Ok(mut session) = russh::server::run_stream(config, socket, connection).await else { return };
    let handle = session.handle();
    if tokio::time::timeout(SIGN_IN_TIME, &mut session).await.is_ok() {
        return;
    }
    if !signed_in.load(Ordering::Acquire) {
        let reason = "signing in took too long".to_owned();
        let _ = handle.disconnect(russh::Disconnect::ByApplication, reason, "en".into()).await;
    }
    let _ = session.await;
}

/// The configured host key, or the one kept in `<data dir>/sftp-host-key`, generated (owner-only) on first use.
fn host_key(configured: Option<&Path>, data_dir: &Path) -> anyhow::Result<PrivateKey> {
    if let Some(path) = configured {
        return PrivateKey::read_openssh_file(path)
            .with_context(|| format!("while reading the SFTP host key {}", path.display()));
    }
    let path = data_dir.join("sftp-host-key");
    match std::fs::read_to_string(&path) {
        Ok(text) => PrivateKey::from_openssh(text).with_context(|| format!("while reading {}", path.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("while drawing an SFTP host key: {e}"))?;
            let key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
            let text = key.to_openssh(LineEnding::LF).context("while encoding the SFTP host key")?;
            std::fs::create_dir_all(data_dir).with_context(|| format!("while creating {}", data_dir.display()))?;
            write_owner_only(&path, &text).with_context(|| format!("while writing {}", path.display()))?;
            tracing::info!(fingerprint = %key.fingerprint(Default::default()), "SFTP host key generated");
            Ok(key)
        }
        Err(error) => Err(error).with_context(|| format!("while reading {}", path.display())),
    }
}

/// One client's connection: who it signed in as, for which server, and its session channels.
struct Connection {
    peer: IpAddr,
    auth: Arc<AuthService>,
    files: Arc<FileService>,
    /// The account, the server, and the key signed in with (`None`: the password).
    signed_in: Option<(User, ServerId, Option<PublicKey>)>,
    /// Set once signed in, for the sign-in deadline.
    admitted: Arc<AtomicBool>,
    /// Session channels opened and not yet running SFTP.
    channels: HashMap<ChannelId, Channel<Msg>>,
    sessions: usize,
    offers: usize,
}

impl Connection {
    /// Lets `user` in if they may reach server `server`'s files; anyone else is refused as a wrong password is.
    async fn admit(&mut self, user: User, server: ServerId, key: Option<PublicKey>) -> Auth {
        match self.files.open(&user, &server).await {
            Ok(_) => {
                tracing::info!(peer = %self.peer, user = %user.id, %server, "signed in to SFTP");
                self.signed_in = Some((user, server, key));
                self.admitted.store(true, Ordering::Release);
                Auth::Accept
            }
            Err(error) => {
                tracing::info!(peer = %self.peer, user = %user.id, %server, %error, "SFTP sign-in refused");
                Auth::reject()
            }
        }
    }

    /// The account `username` names, if `key` is one of its keys.
    async fn key_owner(&self, username: &str, key: &PublicKey) -> Option<(User, ServerId)> {
        let (email, server) = SftpAccess::parse_username(username)?;
        match self.auth.user_with_key(email, key).await {
            Ok(user) => user.map(|user| (user, server)),
            Err(error) => {
                tracing::warn!(peer = %self.peer, %error, "SSH key lookup failed");
                None
            }
        }
    }
}

impl russh::server::Handler for Connection {
    type Error = anyhow::Error;

    async fn auth_password(&mut self, username: &str, password: &str) -> Result<Auth, Self::Error> {
        let Some((email, server)) = SftpAccess::parse_username(username) else { return Ok(Auth::reject()) };
        match self.auth.check_password(self.peer, email, password).await {
            Ok(user) => Ok(self.admit(user, server, None).await),
            Err(error) => {
                tracing::info!(peer = %self.peer, %server, %error, "SFTP password refused");
                Ok(Auth::reject())
            }
        }
    }

    /// Only keys of the account are worth the client's signature.
    async fn auth_publickey_offered(&mut self, username: &str, offer: PublicKeyOffer<'_>) -> Result<Auth, Self::Error> {
        self.offers += 1;
        if self.offers > MAX_KEY_OFFERS {
            return Ok(Auth::reject());
        }
        Ok(if self.key_owner(username, offer.public_key).await.is_some() { Auth::Accept } else { Auth::reject() })
    }

    async fn auth_publickey(&mut self, username: &str, key: VerifiedPublicKey<'_>) -> Result<Auth, Self::Error> {
        match self.key_owner(username, key.public_key).await {
            Some((user, server)) => Ok(self.admit(user, server, Some(key.public_key.clone())).await),
            None => Ok(Auth::reject()),
        }
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.sessions < MAX_SESSIONS {
            self.sessions += 1;
            self.channels.insert(channel.id(), channel);
            reply.accept().await;
        }
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let opened = match (&self.signed_in, name) {
            // Asked again for each session: a server deleted or taken away since sign-in is not reached.
            (Some((user, server, key)), "sftp") => {
                let account = session::Account { auth: self.auth.clone(), user: user.clone(), key: key.clone() };
                self.files.open(user, server).await.ok().map(|opened| (opened, account))
            }
            _ => None,
        };
        match (opened, self.channels.remove(&channel)) {
            (Some((opened, account)), Some(stream)) => {
                session.channel_success(channel)?;
                let sftp = session::SftpSession::new(self.files.clone(), opened, account);
                russh_sftp::server::run(stream.into_stream(), sftp).await;
            }
            _ => session.channel_failure(channel)?,
        }
        Ok(())
    }

    async fn shell_request(&mut self, channel: ChannelId, session: &mut Session) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        Ok(())
    }

    /// The client is done sending on the channel: SFTP is over on it.
    async fn channel_eof(&mut self, channel: ChannelId, session: &mut Session) -> Result<(), Self::Error> {
        self.channels.remove(&channel);
        session.close(channel)?;
        Ok(())
    }

    async fn channel_close(&mut self, channel: ChannelId, _session: &mut Session) -> Result<(), Self::Error> {
        self.channels.remove(&channel);
        Ok(())
    }
}
