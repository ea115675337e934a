//! Spawning a real server per test (random port, brand-new database) and talking to it
//! in the contract's terms.

use crate::postgres::PostgresServer;
use crate::process::SynctvProcess;
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use std::ops::Deref;
use std::sync::Arc;
use synctv_api::http::ApiContext;
use synctv_api::shutdown::Shutdown;
use synctv_api::{Application, StartupError};
use synctv_core::Config;
use tempfile::TempDir;
use tokio::task::JoinHandle;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs an `async fn name(backend: Backend)` test once per backend, as `name::sqlite` and
/// `name::postgres`, so each runs in parallel with everything else.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name($crate::helpers::Backend::Sqlite).await
            }
            #[tokio::test]
            async fn postgres() {
                super::$name($crate::helpers::Backend::Postgres).await
            }
        }
    )*};
}

pub struct TestApp {
    /// `http://127.0.0.1:PORT`
    pub address: String,
    pub port: u16,
    /// The configuration the app was built from (port 0: see `port`).
    pub config: Config,
    pub ctx: ApiContext,
    pub client: reqwest::Client,
    shutdown: Shutdown,
    server: JoinHandle<Result<(), StartupError>>,
    /// Holds the SQLite file, for as long as any app (or a restart) uses it.
    _data: Option<Arc<TempDir>>,
}

/// A guest as `POST /api/v1/auth/guest` made it.
#[derive(Clone, Debug)]
pub struct Guest {
    pub user_id: String,
    pub name: String,
    pub token: String,
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// Like `spawn_app`, with the configuration adjusted first.
pub async fn spawn_app_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = Config::default();
    config.server.host = "127.0.0.1".into();
    config.server.port = 0;
    config.server.drain_secs = 2;
    // Every test signs in from 127.0.0.1; the per-address limits have their own tests.
    config.limits.guests_per_minute = 100_000;
    config.limits.rooms_per_minute = 100_000;
    let data = match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            config.database.url = Some(format!("sqlite://{}/t.db?mode=rwc", dir.path().display()));
            Some(Arc::new(dir))
        }
        Backend::Postgres => {
            config.database.url = Some(PostgresServer::get().create_database().await);
            None
        }
    };
    adjust(&mut config);
    TestApp::start(config, data).await
}

/// Every node of a multi-node test signs with this secret, so a token from one is valid
/// on all of them.
pub const SHARED_JWT_SECRET: &str = "a-shared-secret-of-enough-length";

/// The first node of several: it signs with `SHARED_JWT_SECRET`.
pub async fn spawn_first_node(backend: Backend) -> TestApp {
    spawn_app_with(backend, |c| {
        c.auth.jwt_secret = Some(SHARED_JWT_SECRET.into())
    })
    .await
}

/// Another node of `first`'s cluster: on its database, with the same secret.
pub async fn spawn_peer(backend: Backend, first: &TestApp) -> TestApp {
    let url = first.config.database.url.clone();
    spawn_app_with(backend, |c| {
        c.auth.jwt_secret = Some(SHARED_JWT_SECRET.into());
        c.database.url = url;
    })
    .await
}

/// A real `synctv` process on a brand-new database, for what a test must read from a
/// process of its own: `/metrics`. The Prometheus recorder is process-wide, so an app
/// spawned in this test process shares its counters with every other test here (the twin
/// on the other backend included).
pub struct TestProcess {
    server: SynctvProcess,
    /// Holds the SQLite file for as long as the process runs.
    _data: Option<TempDir>,
}

impl Deref for TestProcess {
    type Target = SynctvProcess;

    fn deref(&self) -> &SynctvProcess {
        &self.server
    }
}

impl TestProcess {
    /// Starts `synctv` on `backend` with the extra settings `env`.
    pub async fn spawn(backend: Backend, env: &[(&str, String)]) -> TestProcess {
        let (url, data) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                (format!("sqlite://{}/t.db", dir.path().display()), Some(dir))
            }
            Backend::Postgres => (PostgresServer::get().create_database().await, None),
        };
        let mut all = vec![("SYNCTV__DATABASE__URL", url)];
        all.extend(env.iter().cloned());
        TestProcess {
            server: SynctvProcess::start(&all).await,
            _data: data,
        }
    }
}

impl TestApp {
    async fn start(config: Config, data: Option<Arc<TempDir>>) -> TestApp {
        let app = Application::build(config.clone()).await.unwrap();
        let port = app.port();
        let ctx = app.context().clone();
        let shutdown = app.shutdown();
        let server = tokio::spawn(app.run_until_stopped());
        TestApp {
            address: format!("http://127.0.0.1:{port}"),
            port,
            config,
            ctx,
            client: reqwest::Client::new(),
            shutdown,
            server,
            _data: data,
        }
    }

    /// Drains and stops the server the way SIGTERM does, and waits for it to finish.
    pub async fn stop(self) -> Option<Arc<TempDir>> {
        self.shutdown.begin();
        self.server.await.unwrap().unwrap();
        self._data
    }

    /// Stops this server and starts a new one on the same database.
    pub async fn restart(self) -> TestApp {
        let config = self.config.clone();
        let data = self.stop().await;
        TestApp::start(config, data).await
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// A new guest; panics unless the server made one.
    pub async fn guest(&self, name: &str) -> Guest {
        let resp = self.post_guest(json!({ "name": name })).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        let body: Value = resp.json().await.unwrap();
        Guest {
            user_id: body["user_id"].as_str().unwrap().into(),
            name: body["name"].as_str().unwrap().into(),
            token: body["token"].as_str().unwrap().into(),
        }
    }

    pub async fn post_guest(&self, body: Value) -> Response {
        self.client
            .post(self.url("/api/v1/auth/guest"))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// A POST with a raw body and an optional Content-Type, for malformed input.
    pub async fn post_raw(
        &self,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> Response {
        let mut req = self.client.post(self.url(path)).body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send().await.unwrap()
    }

    pub async fn create_room(&self, token: &str, body: Value) -> Response {
        self.client
            .post(self.url("/api/v1/rooms"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// A new room named `name` owned by `owner`; its Room JSON.
    pub async fn room(&self, owner: &Guest, name: &str) -> Value {
        let resp = self
            .create_room(&owner.token, json!({ "name": name }))
            .await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        resp.json().await.unwrap()
    }

    /// Creates a room owned by `owner` and returns its id.
    pub async fn room_id(&self, owner: &Guest, name: &str) -> String {
        let room = self.room(owner, name).await;
        room["id"].as_str().expect("a room id").to_owned()
    }

    pub async fn get_room(&self, id: &str) -> Response {
        self.get(&format!("/api/v1/rooms/{id}")).await
    }

    pub async fn list_rooms(&self, query: &str) -> Response {
        self.get(&format!("/api/v1/rooms{query}")).await
    }

    pub async fn delete_room(&self, id: &str, token: Option<&str>) -> Response {
        let mut req = self.client.delete(self.url(&format!("/api/v1/rooms/{id}")));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send().await.unwrap()
    }

    /// `POST /api/v1/auth/{action}` (`ticket`, `refresh`, `logout`) with `token`.
    pub async fn post_auth(&self, action: &str, token: &str) -> Response {
        self.client
            .post(self.url(&format!("/api/v1/auth/{action}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// A fresh WebSocket ticket for `token`.
    pub async fn ticket(&self, token: &str) -> String {
        let resp = self.post_auth("ticket", token).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        let body: Value = resp.json().await.unwrap();
        body["ticket"].as_str().expect("a ticket").to_owned()
    }

    /// `/ws?ticket=…`
    pub fn ticket_url(&self, ticket: &str) -> String {
        format!("{}?ticket={ticket}", self.ws_url())
    }

    pub async fn room_events(&self, id: &str, query: &str) -> Response {
        self.get(&format!("/api/v1/rooms/{id}/events{query}")).await
    }
}

/// Asserts the contract's error body with this status and code.
pub async fn assert_error(resp: Response, status: StatusCode, code: &str) {
    assert_eq!(resp.status(), status, "expected {status} {code}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}
