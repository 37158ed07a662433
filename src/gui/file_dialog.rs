//! Open / save dialogs that always answer: the system dialog (rfd: the XDG desktop portal, or
//! `zenity`) where one exists, otherwise Basin's own file browser drawn in the window.
//!
//! rfd's Linux backend needs a running XDG desktop portal with a file chooser, or the `zenity`
//! program; on a bare machine (Xvfb, a fresh Debian) it has neither and returns "cancelled" at
//! once, so a click did nothing. [`Backend::detect`] looks for either before the first click, and a
//! system dialog that returns nothing within [`INSTANT_FAILURE`] is taken as broken: the request
//! moves to the built-in browser with a notice saying why.
//!
//! The built-in browser answers on a later frame, so every dialog is asked through [`ask`] with a
//! stable id, from code that runs every frame: `ask(ctx, id, clicked.then(FileRequest::folder))`
//! returns the picked path on the frame it is known (at once for a system dialog).

use eframe::egui;
use std::hash::Hash;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A system dialog that gives no answer faster than this did not open (nobody cancels that fast).
pub const INSTANT_FAILURE: Duration = Duration::from_millis(250);

/// Most entries listed from one folder (a folder of millions of files stays responsive).
const MAX_ENTRIES: usize = 10_000;

/// What the user is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PickKind {
    /// An existing file.
    File,
    /// An existing folder.
    Folder,
    /// A file name to write (may not exist yet).
    Save,
}

/// One dialog: what to pick, filters, a suggested name, and a tag handed back with the answer.
#[derive(Debug, Clone, PartialEq)]
pub struct FileRequest {
    pub kind: PickKind,
    /// (label, extensions without the dot).
    pub filters: Vec<(String, Vec<String>)>,
    /// Suggested file name (Save).
    pub file_name: Option<String>,
    /// The caller's context for the answer (e.g. which metric a CSV export is for).
    pub tag: String,
}

impl FileRequest {
    pub fn file() -> Self {
        Self::new(PickKind::File)
    }

    pub fn folder() -> Self {
        Self::new(PickKind::Folder)
    }

    pub fn save(file_name: impl Into<String>) -> Self {
        Self {
            file_name: Some(file_name.into()),
            ..Self::new(PickKind::Save)
        }
    }

    fn new(kind: PickKind) -> Self {
        Self {
            kind,
            filters: Vec::new(),
            file_name: None,
            tag: String::new(),
        }
    }

    pub fn filter(mut self, label: &str, extensions: &[&str]) -> Self {
        self.filters.push((
            label.to_string(),
            extensions.iter().map(|e| e.to_string()).collect(),
        ));
        self
    }

    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = tag.into();
        self
    }

    fn title(&self) -> &'static str {
        match self.kind {
            PickKind::File => "Open file",
            PickKind::Folder => "Open folder",
            PickKind::Save => "Save as",
        }
    }

    /// Whether a file name passes the filters (no filters: every file).
    fn accepts(&self, name: &str) -> bool {
        if self.filters.is_empty() {
            return true;
        }
        let ext = Path::new(name)
            .extension()
            .map(|e| e.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        self.filters
            .iter()
            .any(|(_, exts)| exts.iter().any(|e| e.eq_ignore_ascii_case(&ext)))
    }
}

/// Runs a system dialog for a request (blocking); `None` when cancelled or unavailable.
pub type SystemDialog = fn(&FileRequest) -> Option<PathBuf>;

/// Which dialog answers.
#[derive(Clone, Copy)]
pub enum Backend {
    /// The operating system's dialog through this function (normally [`rfd_dialog`]).
    System(SystemDialog),
    /// Basin's own browser, drawn in the window.
    Builtin,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::System(_) => "System",
            Backend::Builtin => "Builtin",
        })
    }
}

/// What the dialog choice depends on, read from the environment (separate so tests can fake it).
#[derive(Debug, Clone, Default)]
pub struct DialogEnv {
    /// `BASIN_FILE_DIALOG`: `system` or `builtin` forces the choice.
    pub forced: Option<String>,
    /// `PATH`.
    pub path: Option<String>,
    /// `XDG_DATA_DIRS` (default `/usr/local/share:/usr/share`).
    pub data_dirs: Option<String>,
    /// `DBUS_SESSION_BUS_ADDRESS`.
    pub bus_address: Option<String>,
    /// `XDG_RUNTIME_DIR` (the session bus socket is `$XDG_RUNTIME_DIR/bus`).
    pub runtime_dir: Option<String>,
}

impl DialogEnv {
    pub fn current() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Self {
            forced: var("BASIN_FILE_DIALOG"),
            path: var("PATH"),
            data_dirs: var("XDG_DATA_DIRS"),
            bus_address: var("DBUS_SESSION_BUS_ADDRESS"),
            runtime_dir: var("XDG_RUNTIME_DIR"),
        }
    }
}

impl Backend {
    /// The backend for this machine and why (one line for the log).
    pub fn detect() -> (Backend, String) {
        Self::detect_in(&DialogEnv::current(), cfg!(target_os = "linux"))
    }

    /// [`Backend::detect`] for a given environment; `linux` false means the platform's own
    /// dialogs (Windows, macOS), which are always there.
    pub fn detect_in(env: &DialogEnv, linux: bool) -> (Backend, String) {
        match env
            .forced
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("builtin") => {
                return (
                    Backend::Builtin,
                    "file dialogs: Basin's own (BASIN_FILE_DIALOG=builtin)".into(),
                );
            }
            Some("system") => {
                return (
                    Backend::System(rfd_dialog),
                    "file dialogs: the system's (BASIN_FILE_DIALOG=system)".into(),
                );
            }
            _ => {}
        }
        if !linux {
            return (
                Backend::System(rfd_dialog),
                "file dialogs: the system's".into(),
            );
        }
        if let Some(zenity) = find_program(env.path.as_deref(), "zenity") {
            return (
                Backend::System(rfd_dialog),
                format!("file dialogs: the system's ({})", zenity.display()),
            );
        }
        let bus = env.bus_address.is_some()
            || env
                .runtime_dir
                .as_deref()
                .is_some_and(|d| Path::new(d).join("bus").exists());
        let chooser = portal_file_chooser(env.data_dirs.as_deref());
        match (bus, chooser) {
            (true, Some(portal)) => (
                Backend::System(rfd_dialog),
                format!("file dialogs: the XDG desktop portal ({})", portal.display()),
            ),
            (false, _) => (
                Backend::Builtin,
                "file dialogs: Basin's own (no session D-Bus for an XDG desktop portal, and no zenity)"
                    .into(),
            ),
            (true, None) => (
                Backend::Builtin,
                "file dialogs: Basin's own (no XDG desktop portal with a file chooser, and no zenity)"
                    .into(),
            ),
        }
    }
}

/// `name` on a PATH-style list of folders.
fn find_program(path: Option<&str>, name: &str) -> Option<PathBuf> {
    std::env::split_paths(path?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A portal implementation that offers a file chooser (`*.portal` files of xdg-desktop-portal).
fn portal_file_chooser(data_dirs: Option<&str>) -> Option<PathBuf> {
    let dirs = data_dirs.unwrap_or("/usr/local/share:/usr/share");
    std::env::split_paths(dirs).find_map(|dir| {
        let portals = dir.join("xdg-desktop-portal").join("portals");
        std::fs::read_dir(&portals)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "portal"))
            .find(|p| {
                crate::bounded::read_to_string(p, 1 << 16)
                    .is_ok_and(|text| text.contains("org.freedesktop.impl.portal.FileChooser"))
            })
    })
}

/// The system dialog through rfd.
pub fn rfd_dialog(request: &FileRequest) -> Option<PathBuf> {
    let mut dialog = rfd::FileDialog::new();
    for (label, exts) in &request.filters {
        dialog = dialog.add_filter(label, exts);
    }
    if let Some(name) = &request.file_name {
        dialog = dialog.set_file_name(name);
    }
    match request.kind {
        PickKind::File => dialog.pick_file(),
        PickKind::Folder => dialog.pick_folder(),
        PickKind::Save => dialog.save_file(),
    }
}

/// Everything the dialogs keep between frames (in the context's temporary data).
#[derive(Clone)]
struct DialogState {
    backend: Backend,
    open: Option<Browser>,
    /// Answers not collected yet: (asker, path, tag).
    answers: Vec<(egui::Id, PathBuf, String)>,
}

impl Default for DialogState {
    fn default() -> Self {
        Self {
            backend: Backend::Builtin,
            open: None,
            answers: Vec::new(),
        }
    }
}

fn state_id() -> egui::Id {
    egui::Id::unique("basin.file_dialog")
}

fn with_state<R>(ctx: &egui::Context, f: impl FnOnce(&mut DialogState) -> R) -> R {
    ctx.data_mut(|d| f(d.get_temp_mut_or_default::<DialogState>(state_id())))
}

/// Chooses the backend for this context (the app does it once at start; the default is built-in).
pub fn set_backend(ctx: &egui::Context, backend: Backend) {
    with_state(ctx, |s| s.backend = backend);
}

/// The backend in use.
pub fn backend(ctx: &egui::Context) -> Backend {
    with_state(ctx, |s| s.backend)
}

/// Whether Basin's own browser is on screen.
pub fn is_open(ctx: &egui::Context) -> bool {
    with_state(ctx, |s| s.open.is_some())
}

/// Asks for a path: `request` is `Some` on the frame the user clicked. Returns the answer for
/// `id` on the frame it is known (at once from a system dialog, later from the built-in one).
pub fn ask(
    ctx: &egui::Context,
    id: impl Hash + std::fmt::Debug,
    request: Option<FileRequest>,
) -> Option<PathBuf> {
    ask_tagged(ctx, id, request).map(|(p, _)| p)
}

/// [`ask`], also handing back the request's tag.
pub fn ask_tagged(
    ctx: &egui::Context,
    id: impl Hash + std::fmt::Debug,
    request: Option<FileRequest>,
) -> Option<(PathBuf, String)> {
    let id = egui::Id::unique(id);
    if let Some(request) = request {
        match backend(ctx) {
            Backend::System(run) => {
                let started = Instant::now();
                if let Some(p) = run(&request) {
                    return Some((p, request.tag));
                }
                if started.elapsed() < INSTANT_FAILURE {
                    // Nothing opened: from now on Basin's own browser answers, and says why.
                    set_backend(ctx, Backend::Builtin);
                    open_browser(
                        ctx,
                        id,
                        request,
                        Some(
                            "The system file dialog did not open (it needs an XDG desktop portal \
                             with a file chooser, or zenity); Basin's own browser is used instead."
                                .into(),
                        ),
                    );
                }
                return None;
            }
            Backend::Builtin => {
                open_browser(ctx, id, request, None);
                return None;
            }
        }
    }
    with_state(ctx, |s| {
        let i = s.answers.iter().position(|(a, _, _)| *a == id)?;
        let (_, path, tag) = s.answers.remove(i);
        Some((path, tag))
    })
}

fn open_browser(ctx: &egui::Context, id: egui::Id, request: FileRequest, notice: Option<String>) {
    let start = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let start = with_state(ctx, |s| s.open.as_ref().map(|b| b.dir.clone())).unwrap_or(start);
    let browser = Browser::new(id, request, start, notice);
    with_state(ctx, |s| s.open = Some(browser));
    ctx.request_repaint();
}

/// One listed entry of the current folder.
#[derive(Debug, Clone)]
struct Entry {
    name: String,
    is_dir: bool,
    bytes: Option<u64>,
}

/// Basin's own file browser: a folder listing, a location line and a name line for saving.
#[derive(Debug, Clone)]
struct Browser {
    asker: egui::Id,
    request: FileRequest,
    notice: Option<String>,
    dir: PathBuf,
    location: String,
    file_name: String,
    entries: Vec<Entry>,
    truncated: bool,
    selected: Option<String>,
    show_hidden: bool,
    all_files: bool,
    error: Option<String>,
    /// The location line takes the keyboard on the first frame of an open dialog (type a path,
    /// Enter).
    focus_location: bool,
}

impl Browser {
    fn new(asker: egui::Id, request: FileRequest, dir: PathBuf, notice: Option<String>) -> Self {
        let file_name = request.file_name.clone().unwrap_or_default();
        let request_kind = request.kind;
        let mut b = Self {
            asker,
            request,
            notice,
            dir: PathBuf::new(),
            location: String::new(),
            file_name,
            entries: Vec::new(),
            truncated: false,
            selected: None,
            show_hidden: false,
            all_files: false,
            error: None,
            focus_location: request_kind != PickKind::Save,
        };
        b.enter(dir);
        b
    }

    /// Shows `dir` (or says why it cannot be listed, staying where it was).
    fn enter(&mut self, dir: PathBuf) {
        match list_folder(&dir, self.show_hidden) {
            Ok((entries, truncated)) => {
                self.dir = dir;
                self.entries = entries;
                self.truncated = truncated;
                self.selected = None;
                self.error = None;
            }
            Err(e) => self.error = Some(format!("{}: {e}", dir.display())),
        }
        self.location = self.dir.display().to_string();
    }

    fn refresh(&mut self) {
        let dir = self.dir.clone();
        self.enter(dir);
    }

    /// The answer the confirm button gives now, or why there is none.
    fn answer(&self) -> Result<PathBuf, String> {
        match self.request.kind {
            PickKind::Folder => Ok(self.dir.clone()),
            PickKind::File => match &self.selected {
                Some(name) if self.entry(name).is_some_and(|e| !e.is_dir) => {
                    Ok(self.dir.join(name))
                }
                _ => Err("choose a file".into()),
            },
            PickKind::Save => {
                let name = self.file_name.trim();
                if name.is_empty() {
                    Err("type a file name".into())
                } else if name.contains('/') {
                    Err("a file name, without a folder (choose the folder above)".into())
                } else {
                    Ok(self.dir.join(name))
                }
            }
        }
    }

    /// What Enter on the location line answers at once, as in the system dialogs: the shown
    /// folder itself (a folder dialog), or a typed path to a file the filters accept (an open
    /// dialog). Anything else is a folder to go to.
    fn typed_answer(&self) -> Option<PathBuf> {
        let typed = PathBuf::from(self.location.trim());
        match self.request.kind {
            PickKind::Folder => (typed == self.dir).then_some(typed),
            PickKind::File => {
                let name = typed.file_name()?.to_string_lossy().to_string();
                (typed.is_file() && (self.all_files || self.request.accepts(&name)))
                    .then_some(typed)
            }
            PickKind::Save => None,
        }
    }

    fn entry(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// Draws the window; returns `Some(answer)` when it closes (`None` inside: cancelled).
    fn ui(&mut self, ctx: &egui::Context) -> Option<Option<PathBuf>> {
        let mut close = None;
        let mut open = true;
        egui::Window::new(self.request.title())
            .id(egui::Id::unique("basin.file_dialog.window"))
            .collapsible(false)
            .resizable(true)
            .default_width(560.0)
            .open(&mut open)
            .show(ctx, |ui| close = self.body_ui(ui));
        if !open {
            return Some(None);
        }
        close
    }

    fn body_ui(&mut self, ui: &mut egui::Ui) -> Option<Option<PathBuf>> {
        let mut close = None;
        if let Some(notice) = &self.notice {
            ui.colored_label(ui.visuals().warn_fg_color, notice);
        }
        let mut go: Option<PathBuf> = None;
        ui.horizontal(|ui| {
            let label = ui.label("Folder");
            let edit = ui
                .add(
                    egui::TextEdit::singleline(&mut self.location)
                        .desired_width(360.0)
                        .id_salt("basin.file_dialog.location"),
                )
                .labelled_by(label.id);
            if std::mem::take(&mut self.focus_location) {
                edit.request_focus();
            }
            let entered = edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            if entered && let Some(answer) = self.typed_answer() {
                close = Some(Some(answer));
            } else if ui.button("Go").clicked() || entered {
                go = Some(PathBuf::from(self.location.trim()));
                // Enter keeps the keyboard on the line: a second Enter chooses the folder.
                self.focus_location = entered;
            }
            if ui.button("Up").clicked()
                && let Some(parent) = self.dir.parent()
            {
                go = Some(parent.to_path_buf());
            }
            if ui.button("Home").clicked()
                && let Some(home) = std::env::var_os("HOME")
            {
                go = Some(PathBuf::from(home));
            }
        });
        ui.horizontal(|ui| {
            if ui.checkbox(&mut self.show_hidden, "Hidden files").changed() {
                self.refresh();
            }
            if self.request.kind != PickKind::Folder && !self.request.filters.is_empty() {
                let labels: Vec<&str> = self
                    .request
                    .filters
                    .iter()
                    .map(|(l, _)| l.as_str())
                    .collect();
                ui.checkbox(&mut self.all_files, "All files")
                    .on_hover_text(format!("Otherwise only: {}", labels.join(", ")));
            }
        });
        if let Some(e) = &self.error {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
        ui.separator();
        let mut accept_now = false;
        egui::ScrollArea::vertical()
            .max_height(320.0)
            .auto_shrink([false, true])
            .show(ui, |ui| {
                for entry in &self.entries {
                    if !entry.is_dir
                        && (self.request.kind == PickKind::Folder
                            || !(self.all_files || self.request.accepts(&entry.name)))
                    {
                        continue;
                    }
                    let text = if entry.is_dir {
                        format!("{}/", entry.name)
                    } else {
                        match entry.bytes {
                            Some(b) => format!("{}    {}", entry.name, human_bytes(b)),
                            None => entry.name.clone(),
                        }
                    };
                    let chosen = self.selected.as_deref() == Some(entry.name.as_str());
                    let r = ui.selectable_label(chosen, text);
                    if entry.is_dir {
                        // One click enters a folder (a folder dialog picks the folder shown).
                        if r.clicked() {
                            go = Some(self.dir.join(&entry.name));
                        }
                        continue;
                    }
                    if r.clicked() {
                        self.selected = Some(entry.name.clone());
                        if self.request.kind == PickKind::Save {
                            self.file_name = entry.name.clone();
                        }
                    }
                    if r.double_clicked() && self.request.kind == PickKind::File {
                        accept_now = true;
                    }
                }
                if self.truncated {
                    ui.label(format!("(showing the first {MAX_ENTRIES} entries)"));
                }
            });
        ui.separator();
        if self.request.kind == PickKind::Save {
            ui.horizontal(|ui| {
                let label = ui.label("File name");
                ui.add(
                    egui::TextEdit::singleline(&mut self.file_name)
                        .desired_width(300.0)
                        .id_salt("basin.file_dialog.name"),
                )
                .labelled_by(label.id);
            });
        }
        let answer = self.answer();
        ui.horizontal(|ui| {
            let label = match self.request.kind {
                PickKind::File => "Open",
                PickKind::Folder => "Choose folder",
                PickKind::Save => "Save",
            };
            let confirm = ui.add_enabled(answer.is_ok(), egui::Button::new(label));
            if confirm.clicked() || (accept_now && answer.is_ok()) {
                close = Some(answer.clone().ok());
            }
            if ui.button("Cancel").clicked() {
                close = Some(None);
            }
            match &answer {
                Ok(p) => {
                    let what = if self.request.kind == PickKind::Save && p.exists() {
                        format!("{} (replaces the file there)", p.display())
                    } else {
                        p.display().to_string()
                    };
                    ui.label(what);
                }
                Err(why) => {
                    ui.weak(why);
                }
            }
        });
        if let Some(dir) = go {
            self.enter(dir);
        }
        close
    }
}

/// Lists a folder: folders first, then files, each sorted by name; at most [`MAX_ENTRIES`].
fn list_folder(dir: &Path, hidden: bool) -> std::io::Result<(Vec<Entry>, bool)> {
    let mut entries = Vec::new();
    let mut truncated = false;
    for item in std::fs::read_dir(dir)? {
        let Ok(item) = item else { continue };
        let name = item.file_name().to_string_lossy().into_owned();
        if !hidden && name.starts_with('.') {
            continue;
        }
        if entries.len() == MAX_ENTRIES {
            truncated = true;
            break;
        }
        // Follows symbolic links (a hub cache's snapshots are links to blobs).
        let meta = std::fs::metadata(item.path()).ok();
        let is_dir = meta.as_ref().is_some_and(|m| m.is_dir());
        let bytes = meta.filter(|m| m.is_file()).map(|m| m.len());
        entries.push(Entry {
            name,
            is_dir,
            bytes,
        });
    }
    entries.sort_by(|a, b| b.is_dir.cmp(&a.is_dir).then_with(|| a.name.cmp(&b.name)));
    Ok((entries, truncated))
}

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = b as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Draws Basin's browser when one is open (the app calls this once per frame).
pub fn show(ctx: &egui::Context) {
    let Some(mut browser) = with_state(ctx, |s| s.open.take()) else {
        return;
    };
    let closed = browser.ui(ctx);
    let done = closed.is_some();
    with_state(ctx, |s| match closed {
        Some(answer) => {
            if let Some(path) = answer {
                s.answers
                    .push((browser.asker, path, browser.request.tag.clone()));
            }
        }
        // A new request opened meanwhile wins over this one.
        None => {
            if s.open.is_none() {
                s.open = Some(browser);
            }
        }
    });
    if done {
        ctx.request_repaint();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder for one test.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("basin-dialog-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn env_with(dir: &Path) -> DialogEnv {
        DialogEnv {
            forced: None,
            path: Some(dir.join("bin").display().to_string()),
            data_dirs: Some(dir.join("share").display().to_string()),
            bus_address: None,
            runtime_dir: Some(dir.join("run").display().to_string()),
        }
    }

    #[test]
    fn a_bare_machine_gets_the_builtin_browser_and_a_portal_or_zenity_the_system_dialog() {
        let dir = scratch("detect");
        for sub in ["bin", "share/xdg-desktop-portal/portals", "run"] {
            std::fs::create_dir_all(dir.as_path().join(sub)).unwrap();
        }
        let env = env_with(dir.as_path());
        let (b, why) = Backend::detect_in(&env, true);
        assert!(matches!(b, Backend::Builtin), "{why}");
        assert!(why.contains("no session D-Bus"), "{why}");
        // Other platforms always have their dialogs.
        assert!(matches!(
            Backend::detect_in(&env, false).0,
            Backend::System(_)
        ));

        // A bus but a portal without a file chooser (e.g. only xdg-desktop-portal itself).
        let env_bus = DialogEnv {
            bus_address: Some("unix:path=/nonexistent".into()),
            ..env.clone()
        };
        std::fs::write(
            dir.as_path().join("share/xdg-desktop-portal/portals/x.portal"),
            "[portal]\nDBusName=org.freedesktop.impl.portal.desktop.x\nInterfaces=org.freedesktop.impl.portal.Screenshot\n",
        )
        .unwrap();
        let (b, why) = Backend::detect_in(&env_bus, true);
        assert!(matches!(b, Backend::Builtin), "{why}");
        assert!(
            why.contains("no XDG desktop portal with a file chooser"),
            "{why}"
        );

        // A file chooser and a bus socket under XDG_RUNTIME_DIR.
        std::fs::write(
            dir.as_path().join("share/xdg-desktop-portal/portals/gtk.portal"),
            "[portal]\nInterfaces=org.freedesktop.impl.portal.FileChooser;org.freedesktop.impl.portal.AppChooser\n",
        )
        .unwrap();
        assert!(matches!(Backend::detect_in(&env, true).0, Backend::Builtin));
        std::fs::write(dir.as_path().join("run/bus"), "").unwrap();
        let (b, why) = Backend::detect_in(&env, true);
        assert!(matches!(b, Backend::System(_)), "{why}");
        assert!(why.contains("gtk.portal"), "{why}");

        // zenity on PATH is enough.
        let bare = env_with(&dir.as_path().join("elsewhere"));
        assert!(matches!(
            Backend::detect_in(&bare, true).0,
            Backend::Builtin
        ));
        let zenity_env = DialogEnv {
            path: Some(dir.as_path().join("bin").display().to_string()),
            ..bare.clone()
        };
        std::fs::write(dir.as_path().join("bin/zenity"), "").unwrap();
        let (b, why) = Backend::detect_in(&zenity_env, true);
        assert!(matches!(b, Backend::System(_)), "{why}");
        // The user's word wins.
        let forced = DialogEnv {
            forced: Some("builtin".into()),
            ..zenity_env
        };
        assert!(matches!(
            Backend::detect_in(&forced, true).0,
            Backend::Builtin
        ));
    }

    #[test]
    fn filters_and_answers_follow_the_request() {
        let dir = scratch("browse");
        std::fs::create_dir(dir.as_path().join("model")).unwrap();
        std::fs::write(dir.as_path().join("suite.toml"), "x").unwrap();
        std::fs::write(dir.as_path().join("notes.txt"), "x").unwrap();
        std::fs::write(dir.as_path().join(".hidden"), "x").unwrap();
        let id = egui::Id::unique("t");
        let req = FileRequest::file().filter("Suite", &["TOML"]);
        assert!(req.accepts("a.toml") && !req.accepts("a.txt") && !req.accepts("toml"));
        let mut b = Browser::new(id, req, dir.as_path().to_path_buf(), None);
        let names: Vec<&str> = b.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            ["model", "notes.txt", "suite.toml"],
            "folders first, no hidden"
        );
        assert_eq!(b.answer(), Err("choose a file".into()));
        b.selected = Some("model".into());
        assert!(b.answer().is_err(), "a folder is not a file");
        b.selected = Some("suite.toml".into());
        assert_eq!(b.answer().unwrap(), dir.as_path().join("suite.toml"));

        let mut f = Browser::new(id, FileRequest::folder(), dir.as_path().to_path_buf(), None);
        assert_eq!(
            f.answer().unwrap(),
            dir.as_path(),
            "a folder dialog picks the folder shown"
        );
        f.enter(dir.as_path().join("model"));
        assert_eq!(f.answer().unwrap(), dir.as_path().join("model"));

        let mut s = Browser::new(
            id,
            FileRequest::save("out.csv"),
            dir.as_path().to_path_buf(),
            None,
        );
        assert_eq!(s.answer().unwrap(), dir.as_path().join("out.csv"));
        s.file_name = "a/b.csv".into();
        assert!(s.answer().is_err());

        // Enter on the location line: a typed accepted file opens, the shown folder is chosen,
        // anything else (another folder, a filtered-out file) is only gone to.
        b.location = dir.as_path().join("suite.toml").display().to_string();
        assert_eq!(b.typed_answer(), Some(dir.as_path().join("suite.toml")));
        b.location = dir.as_path().join("notes.txt").display().to_string();
        assert_eq!(b.typed_answer(), None);
        b.location = dir.as_path().join("model").display().to_string();
        assert_eq!(b.typed_answer(), None);
        f.location = format!("  {}  ", f.dir.display());
        assert_eq!(f.typed_answer(), Some(dir.as_path().join("model")));
        f.location = dir.as_path().display().to_string();
        assert_eq!(f.typed_answer(), None, "another folder is gone to first");
        assert_eq!(s.typed_answer(), None, "saving needs the Save button");
        assert!(f.focus_location && !s.focus_location);

        // A folder that cannot be listed keeps the old one and says why.
        let before = f.dir.clone();
        f.enter(dir.as_path().join("missing"));
        assert_eq!(f.dir, before);
        assert!(
            f.error.as_deref().unwrap().contains("missing"),
            "{:?}",
            f.error
        );
    }

    #[test]
    fn a_system_dialog_that_fails_at_once_hands_over_to_the_builtin_browser() {
        let ctx = egui::Context::default();
        fn broken(_: &FileRequest) -> Option<PathBuf> {
            None
        }
        fn works(r: &FileRequest) -> Option<PathBuf> {
            Some(PathBuf::from(format!("/picked/{}", r.tag)))
        }
        set_backend(&ctx, Backend::System(works));
        assert_eq!(
            ask_tagged(&ctx, "a", Some(FileRequest::folder().tag("x"))),
            Some((PathBuf::from("/picked/x"), "x".into()))
        );
        assert!(!is_open(&ctx));
        set_backend(&ctx, Backend::System(broken));
        assert_eq!(ask(&ctx, "a", Some(FileRequest::folder())), None);
        assert!(is_open(&ctx), "the builtin browser took over");
        assert!(matches!(backend(&ctx), Backend::Builtin));
        let notice = with_state(&ctx, |s| s.open.as_ref().unwrap().notice.clone());
        assert!(notice.unwrap().contains("did not open"));
        // Its answer reaches the asker, once.
        let dir = with_state(&ctx, |s| s.open.as_ref().unwrap().dir.clone());
        with_state(&ctx, |s| {
            let b = s.open.take().unwrap();
            s.answers.push((b.asker, b.dir.clone(), b.request.tag));
        });
        assert_eq!(ask(&ctx, "other", None), None);
        assert_eq!(ask(&ctx, "a", None), Some(dir));
        assert_eq!(ask(&ctx, "a", None), None);
    }
}
