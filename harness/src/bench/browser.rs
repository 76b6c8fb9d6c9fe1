//! Headless Chromium driven over the DevTools protocol: opens a page, and tells what a
//! person's browser would have done with it: the DOM after its scripts ran, console
//! errors, every request it made, when it first painted, a screenshot. The bench's
//! first-paint row and the HTML report's browser tests use it.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// Every wait on the browser gives up after this long.
const DEADLINE: Duration = Duration::from_secs(30);

/// The flags that make Chromium work here: no sandbox (root), no GPU, and nothing that
/// reaches the network by itself.
pub const HEADLESS_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// What a page did while it loaded.
#[derive(Debug, Clone, Default)]
pub struct PageLoad {
    /// Console errors and uncaught exceptions, as the console shows them.
    pub console_errors: Vec<String>,
    /// Every URL the page requested besides itself.
    pub requests: Vec<String>,
    /// The page's first contentful paint, by the browser's own clock (ms since
    /// navigation began).
    pub first_paint_ms: f64,
    /// The document after its scripts ran.
    pub dom: String,
}

/// A running headless Chromium with one page; ended when dropped.
pub struct Browser {
    child: Child,
    socket: WebSocket<MaybeTlsStream<TcpStream>>,
    session: String,
    next_id: u64,
    /// Events that arrived while waiting for an answer, in order.
    events: Vec<Value>,
    _profile: tempfile::TempDir,
}

fn error(text: impl Into<String>) -> std::io::Error {
    std::io::Error::other(text.into())
}

impl Browser {
    /// Starts `chromium` (or `HIL_CHROMIUM`) with a fresh profile and a page of
    /// `width` × `height`.
    pub fn start(width: u32, height: u32) -> std::io::Result<Browser> {
        let program = std::env::var("HIL_CHROMIUM").unwrap_or_else(|_| "chromium".into());
        let profile = tempfile::tempdir()?;
        let mut child = Command::new(&program)
            .args(HEADLESS_FLAGS)
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("--window-size={width},{height}"))
            .arg("--remote-debugging-address=127.0.0.1")
            .arg("--remote-debugging-port=0")
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                error(format!(
                    "cannot start {program} ({e}): install Debian's chromium (ci/test.sh does), or name it with HIL_CHROMIUM"
                ))
            })?;
        let url = match devtools_url(&mut child) {
            Ok(url) => url,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        let (socket, _) = tungstenite::connect(url.as_str())
            .map_err(|e| error(format!("cannot reach Chromium's DevTools at {url}: {e}")))?;
        if let MaybeTlsStream::Plain(stream) = socket.get_ref() {
            stream.set_read_timeout(Some(DEADLINE))?;
        }
        let mut browser = Browser {
            child,
            socket,
            session: String::new(),
            next_id: 0,
            events: Vec::new(),
            _profile: profile,
        };
        let target = browser.call("Target.createTarget", json!({"url": "about:blank"}))?;
        let target = target["targetId"].as_str().unwrap_or_default().to_string();
        let attached = browser.call(
            "Target.attachToTarget",
            json!({"targetId": target, "flatten": true}),
        )?;
        browser.session = attached["sessionId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        for domain in [
            "Page.enable",
            "Runtime.enable",
            "Log.enable",
            "Network.enable",
        ] {
            browser.call(domain, json!({}))?;
        }
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        )?;
        Ok(browser)
    }

    /// Sends one command (to the page once attached) and waits for its answer.
    fn call(&mut self, method: &str, params: Value) -> std::io::Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            message["sessionId"] = json!(self.session);
        }
        self.socket
            .send(Message::text(message.to_string()))
            .map_err(|e| error(format!("DevTools: {method}: {e}")))?;
        let started = Instant::now();
        loop {
            let value = self.next_message(started, method)?;
            if value["id"].as_u64() == Some(id) {
                if let Some(problem) = value.get("error") {
                    return Err(error(format!("DevTools: {method}: {problem}")));
                }
                return Ok(value["result"].clone());
            }
            self.events.push(value);
        }
    }

    /// The next message from the browser, read by `started` + [`DEADLINE`].
    fn next_message(&mut self, started: Instant, waiting_for: &str) -> std::io::Result<Value> {
        loop {
            if started.elapsed() > DEADLINE {
                return Err(error(format!("DevTools: {waiting_for}: no answer in time")));
            }
            let incoming = self
                .socket
                .read()
                .map_err(|e| error(format!("DevTools: {waiting_for}: {e}")))?;
            if let Message::Text(text) = incoming {
                return serde_json::from_str(text.as_str())
                    .map_err(|e| error(format!("DevTools: not JSON: {e}")));
            }
        }
    }

    /// Waits for the event `method`, looking first at those already arrived.
    fn event(&mut self, method: &str) -> std::io::Result<Value> {
        if let Some(at) = self.events.iter().position(|e| e["method"] == method) {
            return Ok(self.events.remove(at));
        }
        let started = Instant::now();
        loop {
            let value = self.next_message(started, method)?;
            if value["method"] == method {
                return Ok(value);
            }
            self.events.push(value);
        }
    }

    /// Evaluates `expression` in the page, awaiting it if it is a promise.
    pub fn eval(&mut self, expression: &str) -> std::io::Result<Value> {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "awaitPromise": true, "returnByValue": true}),
        )?;
        if let Some(exception) = result.get("exceptionDetails") {
            return Err(error(format!("the page threw: {exception}")));
        }
        Ok(result["result"]["value"].clone())
    }

    /// Opens `file` (with `fragment` after `#`, if any) and waits for it to load and
    /// first paint.
    pub fn open(&mut self, file: &Path, fragment: &str) -> std::io::Result<PageLoad> {
        let path = std::path::absolute(file)?;
        // A query of its own makes each opening a new document, even of the same file.
        self.next_id += 1;
        let page = format!("file://{}?open={}", path.display(), self.next_id);
        let url = if fragment.is_empty() {
            page.clone()
        } else {
            format!("{page}#{fragment}")
        };
        self.events.clear();
        self.call("Page.navigate", json!({"url": url}))?;
        self.event("Page.loadEventFired")?;
        let first_paint = self.eval(
            "new Promise(done => new PerformanceObserver((list, observer) => { \
               const paint = list.getEntries().find(e => e.name === 'first-contentful-paint'); \
               if (paint) { observer.disconnect(); done(paint.startTime); } \
             }).observe({type: 'paint', buffered: true}))",
        )?;
        let dom = self.eval("document.documentElement.outerHTML")?;
        let mut load = PageLoad {
            first_paint_ms: first_paint.as_f64().unwrap_or(f64::NAN),
            dom: dom.as_str().unwrap_or_default().to_string(),
            ..PageLoad::default()
        };
        for event in &self.events {
            let params = &event["params"];
            match event["method"].as_str() {
                Some("Runtime.exceptionThrown") => load
                    .console_errors
                    .push(params["exceptionDetails"].to_string()),
                Some("Runtime.consoleAPICalled") if params["type"] == "error" => {
                    load.console_errors.push(params["args"].to_string())
                }
                Some("Log.entryAdded") if params["entry"]["level"] == "error" => load
                    .console_errors
                    .push(params["entry"]["text"].to_string()),
                Some("Network.requestWillBeSent") => {
                    let requested = params["request"]["url"].as_str().unwrap_or_default();
                    if requested.split('#').next() != Some(page.as_str()) {
                        load.requests.push(requested.to_string());
                    }
                }
                _ => {}
            }
        }
        Ok(load)
    }

    /// A PNG of the whole page as it is now.
    pub fn screenshot(&mut self, png: &Path) -> std::io::Result<()> {
        let shot = self.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true}),
        )?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap_or_default())
            .map_err(|e| error(format!("DevTools: a screenshot that is not base64: {e}")))?;
        std::fs::write(png, bytes)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads Chromium's stderr until it says where DevTools listen; the rest of stderr is
/// drained on a thread so the browser never blocks on it.
fn devtools_url(child: &mut Child) -> std::io::Result<String> {
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| error("Chromium's stderr"))?;
    let (found, wait) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut found = Some(found);
        let mut said = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(at) = line.find("ws://") {
                if let Some(found) = found.take() {
                    let _ = found.send(Ok(line[at..].trim().to_string()));
                }
            } else if found.is_some() {
                said.push(line);
            }
        }
        if let Some(found) = found {
            let _ = found.send(Err(said.join("\n")));
        }
    });
    match wait.recv_timeout(DEADLINE) {
        Ok(Ok(url)) => Ok(url),
        Ok(Err(said)) => Err(error(format!(
            "Chromium ended before DevTools listened: {said}"
        ))),
        Err(_) => Err(error("Chromium did not start DevTools in time")),
    }
}
