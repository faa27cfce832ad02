//! The file manager page (`/servers/:id/files`): a server's files listed directory by directory, text files
//! edited in the browser (earlier versions kept and restorable), uploads with a progress bar (drag and drop or
//! the file picker, many at once, streamed to the server), downloads, new folders, renames, deletes and archive
//! extraction.
//!
//! Everything but uploads and downloads goes through server functions; uploads go to the REST route
//! (`POST /api/servers/{id}/files/upload`) from the browser directly, so they stream with a progress bar, and
//! downloads are plain links to `…/files/download`. The page also says how to reach the files over SFTP.

use catalog::ServerId;
use catalog::account::SftpAccess;
use catalog::backups::format_utc;
use catalog::files::{ArchiveFormat, FileEntry, FileKind, FileListing, FileVersion, SearchResults, language_of};
use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::{use_navigate, use_params_map, use_query_map};

use crate::auth::RequireUser;
use crate::error::{AppError, Outcome};

#[server(prefix = "/rpc", endpoint = "list_files")]
pub async fn list_files(id: ServerId, path: String) -> Result<FileListing, AppError> {
    ssr::with_files(move |files, user| async move { files.list(&user, &id, &path).await }).await
}

/// A text file's content, for the editor (at most [`catalog::files::MAX_EDIT_BYTES`], UTF-8).
#[server(prefix = "/rpc", endpoint = "read_text")]
pub async fn read_text(id: ServerId, path: String) -> Result<String, AppError> {
    ssr::with_files(move |files, user| async move { files.read_text(&user, &id, &path).await }).await
}

#[server(prefix = "/rpc", endpoint = "save_text")]
pub async fn save_text(id: ServerId, path: String, text: String) -> Result<FileEntry, AppError> {
    ssr::with_files(move |files, user| async move { files.save_text(&user, &id, &path, text).await }).await
}

/// One change to the files: `mkdir` (path), `rename` (path → to), `copy` (path → to), `delete` (path),
/// `extract` (path → to).
#[server(prefix = "/rpc", endpoint = "change_files")]
pub async fn change_files(
    id: ServerId,
    change: String,
    path: String,
    #[server(default)] to: String,
) -> Result<(), AppError> {
    ssr::with_files(move |files, user| async move { files.change(&user, &id, &change, &path, &to).await }).await
}

/// A change to several files at once: `delete` them, or `compress` them into the archive `to`.
#[server(prefix = "/rpc", endpoint = "change_selected")]
pub async fn change_selected(
    id: ServerId,
    change: String,
    paths: Vec<String>,
    #[server(default)] to: String,
) -> Result<(), AppError> {
    ssr::with_files(move |files, user| async move { files.change_all(&user, &id, &change, &paths, &to).await }).await
}

/// Files whose names hold `text`, and with `content` lines of text files that do.
#[server(prefix = "/rpc", endpoint = "search_files")]
pub async fn search_files(
    id: ServerId,
    text: String,
    #[server(default)] content: bool,
) -> Result<SearchResults, AppError> {
    ssr::with_files(move |files, user| async move { files.search(&user, &id, &text, content).await }).await
}

#[server(prefix = "/rpc", endpoint = "file_versions")]
pub async fn file_versions(id: ServerId, path: String) -> Result<Vec<FileVersion>, AppError> {
    ssr::with_files(move |files, user| async move { files.versions(&user, &id, &path).await }).await
}

#[server(prefix = "/rpc", endpoint = "restore_file_version")]
pub async fn restore_file_version(id: ServerId, path: String, version: String) -> Result<FileEntry, AppError> {
    ssr::with_files(move |files, user| async move { files.restore_version(&user, &id, &path, &version).await }).await
}

/// How the signed-in user reaches this server's files over SFTP; `None` when this host has no SFTP.
#[server(prefix = "/rpc", endpoint = "sftp_access")]
pub async fn get_sftp_access(id: ServerId) -> Result<Option<SftpAccess>, AppError> {
    ssr::with_files(move |files, user| async move { files.sftp_access(&user, &id).await }).await
}

#[component]
pub fn FilesPage() -> impl IntoView {
    fn render(_: catalog::account::User) -> AnyView {
        view! { <FileManager /> }.into_any()
    }
    view! { <RequireUser render /> }
}

/// `a/b` + `c` → `a/b/c`.
fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() { name.to_owned() } else { format!("{dir}/{name}") }
}

fn parent(path: &str) -> String {
    path.rsplit_once('/').map(|(parent, _)| parent.to_owned()).unwrap_or_default()
}

#[component]
fn FileManager() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let id = Memo::new(move |_| ServerId::new(params.read().get("id").unwrap_or_default()));
    let dir = Memo::new(move |_| query.read().get("path").unwrap_or_default());
    let editing = Memo::new(move |_| query.read().get("edit"));
    // Bumped after every change, so the listing is read again.
    let changed = RwSignal::new(0u32);
    let listing = Resource::new(move || (id.get(), dir.get(), changed.get()), |(id, dir, _)| list_files(id, dir));
    let message = RwSignal::new(None::<Result<String, String>>);
    let change = Action::new(move |(change, path, to): &(String, String, String)| {
        let (change, path, to) = (change.clone(), path.clone(), to.clone());
        async move {
            let done = change_files(id.get_untracked(), change.clone(), path.clone(), to).await;
            message.set(Some(done.map(|()| format!("Done: {change} {path}")).map_err(|e| e.to_string())));
            changed.update(|n| *n += 1);
        }
    });
    // Several at once: the paths ticked in the listing (of the directory shown: another one starts afresh).
    let selected = RwSignal::new(Vec::<String>::new());
    Effect::new(move |_| {
        dir.track();
        selected.set(Vec::new());
    });
    let change_all = Action::new(move |(change, to): &(String, String)| {
        let (change, to, paths) = (change.clone(), to.clone(), selected.get_untracked());
        async move {
            let count = paths.len();
            let done = change_selected(id.get_untracked(), change.clone(), paths, to).await;
            message.set(Some(done.map(|()| format!("Done: {change} {count} entries")).map_err(|e| e.to_string())));
            selected.set(Vec::new());
            changed.update(|n| *n += 1);
        }
    });
    let files_href = move |path: &str| format!("/servers/{}/files?path={}", id.get(), urlencoding::encode(path));
    // A new, empty file opens in the editor.
    let make_file = move |name: String| {
        let (id, dir) = (id.get_untracked(), dir.get_untracked());
        let path = join(&dir, &name);
        let edit =
            format!("/servers/{id}/files?path={}&edit={}", urlencoding::encode(&dir), urlencoding::encode(&path));
        let navigate = use_navigate();
        leptos::task::spawn_local(async move {
            match save_text(id, path, String::new()).await {
                Ok(_) => navigate(&edit, Default::default()),
                Err(error) => message.set(Some(Err(error.to_string()))),
            }
        });
    };

    view! {
        <section class="files">
            <p class="crumbs">
                <A href="/servers">"My servers"</A>
                " / "
                <a href=move || format!("/servers/{}", id.get())>"Server"</a>
                " / "
                <a href=move || files_href("")>"Files"</a>
                {move || {
                    let dir = dir.get();
                    let mut shown = String::new();
                    dir.split('/')
                        .filter(|part| !part.is_empty())
                        .map(|part| {
                            shown = join(&shown, part);
                            let href = files_href(&shown);
                            view! { " / " <a href=href>{part.to_owned()}</a> }
                        })
                        .collect_view()
                }}
            </p>
            <h1>"Files"</h1>
            {move || match editing.get() {
                Some(path) => view! { <Editor id=id.get() path /> }.into_any(),
                None => {
                    view! {
                        <div class="file-tools">
                            <NameForm what="folder" made=move |name: String| {
                                change.dispatch(("mkdir".into(), join(&dir.get_untracked(), &name), String::new()));
                            } />
                            <NameForm what="file" made=make_file />
                            <Upload id=id dir=dir changed />
                        </div>
                        <Outcome outcome=message />
                        <SftpDetails id=id />
                        <Search id=id />
                        <Selection selected change_all />
                        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
                            {move || Suspend::new(async move {
                                match listing.await {
                                    Ok(listing) => {
                                        view! { <Listing listing id=id.get_untracked() change selected /> }.into_any()
                                    }
                                    Err(error) => view! { <p class="error" role="alert">{error.to_string()}</p> }.into_any(),
                                }
                            })}
                        </Suspense>
                    }
                        .into_any()
                }
            }}
        </section>
    }
}

/// The SFTP address and username, and what signs in there.
#[component]
fn SftpDetails(id: Memo<ServerId>) -> impl IntoView {
    let access = Resource::new(move || id.get(), get_sftp_access);
    view! {
        <Suspense>
            {move || Suspend::new(async move {
                access.await.ok().flatten().map(|access| {
                    let command = format!("sftp -P {} {}@{}", access.port, access.username, access.host);
                    view! {
                        <details class="sftp">
                            <summary>"SFTP"</summary>
                            <dl>
                                <dt>"Address"</dt>
                                <dd class="sftp-address">{format!("sftp://{}:{}", access.host, access.port)}</dd>
                                <dt>"Username"</dt>
                                <dd class="sftp-username">{access.username}</dd>
                            </dl>
                            <p>
                                "Sign in with your account's password or an SSH key added on "
                                <A href="/account">"your account page"</A>
                                ". From a terminal: "
                                <code>{command}</code>
                            </p>
                        </details>
                    }
                })
            })}
        </Suspense>
    }
}

/// A one-field form naming something new in the directory shown (`what`: `folder` or `file`); `made` gets the
/// name, trimmed, once there is one.
#[component]
fn NameForm(what: &'static str, made: impl Fn(String) + 'static) -> impl IntoView {
    let name = RwSignal::new(String::new());
    let label = format!("New {what} name");
    view! {
        <form on:submit=move |event| {
            event.prevent_default();
            let given = name.get_untracked().trim().to_owned();
            if !given.is_empty() {
                made(given);
                name.set(String::new());
            }
        }>
            <input
                name=what
                placeholder=label.clone()
                aria-label=label
                prop:value=move || name.get()
                on:input=move |event| name.set(event_target_value(&event))
            />
            <button type="submit">{format!("New {what}")}</button>
        </form>
    }
}

/// What can be done to the entries ticked in the listing.
#[component]
fn Selection(selected: RwSignal<Vec<String>>, change_all: Action<(String, String), ()>) -> impl IntoView {
    let archive = RwSignal::new("files.zip".to_owned());
    view! {
        <Show when=move || !selected.read().is_empty()>
            <form class="selection" on:submit=move |event| {
                event.prevent_default();
                change_all.dispatch(("compress".into(), archive.get_untracked()));
            }>
                <span>{move || format!("{} selected", selected.read().len())}</span>
                <button type="button" class="danger" on:click=move |_| {
                    change_all.dispatch(("delete".into(), String::new()));
                }>"Delete selected"</button>
                <input
                    aria-label="Archive name"
                    prop:value=move || archive.get()
                    on:input=move |event| archive.set(event_target_value(&event))
                />
                <button type="submit">"Compress selected"</button>
            </form>
        </Show>
    }
}

/// Search by name, and with "in contents" the lines of text files; a hit opens its file.
#[component]
fn Search(id: Memo<ServerId>) -> impl IntoView {
    let (text, content) = (RwSignal::new(String::new()), RwSignal::new(false));
    let search =
        Action::new(move |(text, content): &(String, bool)| search_files(id.get_untracked(), text.clone(), *content));
    let hits = move || {
        search.value().get().map(|found| match found {
            Ok(found) if found.hits.is_empty() => view! { <p class="hint">"Nothing found."</p> }.into_any(),
            Ok(found) => {
                let id = id.get_untracked();
                let rows = found
                    .hits
                    .into_iter()
                    .map(|hit| {
                        let href = format!(
                            "/servers/{id}/files?path={}&edit={}",
                            urlencoding::encode(&parent(&hit.path)),
                            urlencoding::encode(&hit.path)
                        );
                        let at = hit.line.map(|line| format!(":{line}")).unwrap_or_default();
                        view! {
                            <li>
                                <a href=href>{format!("{}{at}", hit.path)}</a>
                                {hit.text.map(|text| view! { " " <code>{text}</code> })}
                            </li>
                        }
                    })
                    .collect_view();
                let more = found.truncated.then(|| view! { <p class="hint">"More were found than are shown."</p> });
                view! { <ul class="hits">{rows}</ul> {more} }.into_any()
            }
            Err(error) => view! { <p class="error" role="alert">{error.to_string()}</p> }.into_any(),
        })
    };
    view! {
        <form class="search" role="search" on:submit=move |event| {
            event.prevent_default();
            search.dispatch((text.get_untracked(), content.get_untracked()));
        }>
            <input
                type="search"
                aria-label="Search files"
                placeholder="Search files"
                prop:value=move || text.get()
                on:input=move |event| text.set(event_target_value(&event))
            />
            <label>
                <input type="checkbox" prop:checked=move || content.get() on:change=move |event| content.set(event_target_checked(&event)) />
                " in contents"
            </label>
            <button type="submit">"Search"</button>
        </form>
        {hits}
    }
}

/// `dir/a.txt` → `dir/a copy.txt`, `dir/world` → `dir/world copy`.
fn copy_name(path: &str) -> String {
    let (dir, name) = path.rsplit_once('/').map_or(("", path), |(dir, name)| (dir, name));
    let copied = match name.rsplit_once('.') {
        Some((stem, extension)) if !stem.is_empty() => format!("{stem} copy.{extension}"),
        _ => format!("{name} copy"),
    };
    join(dir, &copied)
}

#[component]
fn Listing(
    listing: FileListing,
    id: ServerId,
    change: Action<(String, String, String), ()>,
    selected: RwSignal<Vec<String>>,
) -> impl IntoView {
    let dir = listing.path.clone();
    let renaming = RwSignal::new(None::<String>);
    let new_name = RwSignal::new(String::new());
    let rows = listing
        .entries
        .into_iter()
        .map(|entry| {
            let path = join(&dir, &entry.name);
            let id = id.clone();
            let open = match entry.kind {
                FileKind::Dir => format!("/servers/{id}/files?path={}", urlencoding::encode(&path)),
                _ => format!("/servers/{id}/files?path={}&edit={}", urlencoding::encode(&dir), urlencoding::encode(&path)),
            };
            let download = format!("/api/servers/{id}/files/download?path={}", urlencoding::encode(&path));
            let kind = match entry.kind {
                FileKind::Dir => "folder",
                FileKind::File => "file",
                FileKind::Symlink => "link",
            };
            let size = if entry.kind == FileKind::File { catalog::bytes_text(entry.size) } else { String::new() };
            let archive = entry.kind == FileKind::File && ArchiveFormat::of(&entry.name).is_some();
            let editable = entry.kind != FileKind::Symlink;
            let (for_rename, for_delete, for_extract, for_check) = (path.clone(), path.clone(), path.clone(), path.clone());
            let extract_to = parent(&path);
            let (for_select, for_ticked, for_copy) = (path.clone(), path.clone(), path.clone());
            view! {
                <tr data-name=entry.name.clone()>
                    <td class="select">
                        <input
                            type="checkbox"
                            aria-label=format!("Select {}", entry.name)
                            prop:checked=move || selected.read().contains(&for_ticked)
                            on:change=move |event| {
                                let path = for_select.clone();
                                selected.update(|paths| {
                                    paths.retain(|p| *p != path);
                                    if event_target_checked(&event) {
                                        paths.push(path);
                                    }
                                });
                            }
                        />
                    </td>
                    <td class="kind">{kind}</td>
                    <td class="name">
                        {if editable {
                            view! { <a href=open>{entry.name.clone()}</a> }.into_any()
                        } else {
                            view! { <span>{entry.name.clone()}</span> }.into_any()
                        }}
                        <Show when=move || renaming.get().as_deref() == Some(for_check.as_str())>
                            {
                                let from = for_rename.clone();
                                view! {
                                    <form class="rename" on:submit=move |event| {
                                        event.prevent_default();
                                        let to = join(&parent(&from), new_name.get_untracked().trim());
                                        change.dispatch(("rename".into(), from.clone(), to));
                                        renaming.set(None);
                                    }>
                                        <input
                                            aria-label="New name"
                                            prop:value=move || new_name.get()
                                            on:input=move |event| new_name.set(event_target_value(&event))
                                        />
                                        <button type="submit">"OK"</button>
                                    </form>
                                }
                            }
                        </Show>
                    </td>
                    <td class="size">{size}</td>
                    <td class="modified">{format_utc(entry.modified)}</td>
                    <td class="actions">
                        {(entry.kind != FileKind::Symlink).then(|| view! { <a href=download.clone() download="">"Download"</a> })}
                        <button type="button" on:click={
                            let (path, name) = (path.clone(), entry.name.clone());
                            move |_| {
                                new_name.set(name.clone());
                                renaming.set(Some(path.clone()));
                            }
                        }>"Rename"</button>
                        <button type="button" on:click=move |_| {
                            change.dispatch(("copy".into(), for_copy.clone(), copy_name(&for_copy)));
                        }>"Copy"</button>
                        {archive.then(|| {
                            let (path, to) = (for_extract.clone(), extract_to.clone());
                            view! {
                                <button type="button" on:click=move |_| {
                                    change.dispatch(("extract".into(), path.clone(), to.clone()));
                                }>"Extract"</button>
                            }
                        })}
                        <button type="button" class="danger" on:click=move |_| {
                            change.dispatch(("delete".into(), for_delete.clone(), String::new()));
                        }>"Delete"</button>
                    </td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <p class="hint">{format!("{} entries", listing.total)}</p>
        <table class="file-list">
            <thead>
                <tr><th></th><th>"Kind"</th><th>"Name"</th><th>"Size"</th><th>"Modified"</th><th>""</th></tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
    }
}

/// Uploads chosen or dropped files into the directory shown, with one progress bar for the lot.
#[component]
fn Upload(id: Memo<ServerId>, dir: Memo<String>, changed: RwSignal<u32>) -> impl IntoView {
    let progress = RwSignal::new(None::<(f64, f64)>);
    let outcome = RwSignal::new(None::<Result<String, String>>);
    #[cfg(feature = "hydrate")]
    let send = move |files: web_sys::FileList| {
        browser::upload(&id.get_untracked(), &dir.get_untracked(), &files, progress, outcome, changed);
    };
    #[cfg(not(feature = "hydrate"))]
    let _ = (id, dir, changed);
    view! {
        <div
            class="upload"
            on:dragover=move |event| event.prevent_default()
            on:drop=move |event| {
                event.prevent_default();
                #[cfg(feature = "hydrate")]
                if let Some(files) = event.data_transfer().and_then(|data| data.files()) {
                    send(files);
                }
            }
        >
            <label>
                "Upload files (or drop them here): "
                <input
                    type="file"
                    name="upload"
                    multiple
                    on:change=move |event| {
                        #[cfg(feature = "hydrate")]
                        {
                            use wasm_bindgen::JsCast as _;
                            let input = event.target().and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok());
                            if let Some(files) = input.as_ref().and_then(|input| input.files()) {
                                send(files);
                            }
                        }
                        #[cfg(not(feature = "hydrate"))]
                        let _ = event;
                    }
                />
            </label>
            {move || progress.get().map(|(done, total)| view! {
                <progress class="upload-progress" value=done.to_string() max=total.to_string() aria-label="Upload progress"></progress>
            })}
            <Outcome outcome=outcome />
        </div>
    }
}

/// The text editor: line numbers beside the text, the file's kind for its highlighting, and the earlier
/// versions kept of it.
#[component]
fn Editor(id: ServerId, path: String) -> impl IntoView {
    let text = RwSignal::new(String::new());
    let loaded = Resource::new(
        {
            let (id, path) = (id.clone(), path.clone());
            move || (id.clone(), path.clone())
        },
        |(id, path)| read_text(id, path),
    );
    let saves = RwSignal::new(0u32);
    let versions = Resource::new(
        {
            let (id, path) = (id.clone(), path.clone());
            move || (id.clone(), path.clone(), saves.get())
        },
        |(id, path, _)| file_versions(id, path),
    );
    let outcome = RwSignal::new(None::<Result<String, String>>);
    let language = language_of(&path).unwrap_or("text");
    let code = NodeRef::<leptos::html::Div>::new();
    let current = code_editor(code, text, language, outcome);
    let save = Action::new({
        let (id, path) = (id.clone(), path.clone());
        move |_: &()| {
            let content = current().unwrap_or_else(|| text.get_untracked());
            let (id, path) = (id.clone(), path.clone());
            async move {
                let saved = save_text(id, path, content).await;
                outcome.set(Some(
                    saved
                        .map(|entry| format!("Saved ({})", catalog::bytes_text(entry.size)))
                        .map_err(|e| e.to_string()),
                ));
                saves.update(|n| *n += 1);
            }
        }
    });
    let restore = Action::new({
        let (id, path) = (id.clone(), path.clone());
        move |version: &String| {
            let (id, path, version) = (id.clone(), path.clone(), version.clone());
            async move {
                match restore_file_version(id.clone(), path.clone(), version).await {
                    Ok(_) => {
                        if let Ok(content) = read_text(id, path).await {
                            text.set(content);
                        }
                        outcome.set(Some(Ok("Restored the earlier version".into())));
                    }
                    Err(error) => outcome.set(Some(Err(error.to_string()))),
                }
                saves.update(|n| *n += 1);
            }
        }
    });
    let back = {
        let navigate = use_navigate();
        let (id, dir) = (id.clone(), parent(&path));
        move |_| navigate(&format!("/servers/{id}/files?path={}", urlencoding::encode(&dir)), Default::default())
    };
    view! {
        <div class="editor">
            <p>
                <code class="editing">{path.clone()}</code>
                <span class="language">{language}</span>
            </p>
            <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match loaded.await {
                        Ok(content) => {
                            text.set(content);
                            ().into_any()
                        }
                        Err(error) => view! { <p class="error" role="alert">{error.to_string()}</p> }.into_any(),
                    }
                })}
            </Suspense>
            <div class="code" node_ref=code></div>
            <button type="button" class="primary" on:click=move |_| { save.dispatch(()); }>"Save"</button>
            <button type="button" on:click=back>"Close"</button>
            <Outcome outcome=outcome />
            <h2>"Earlier versions"</h2>
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    let versions = versions.await.unwrap_or_default();
                    if versions.is_empty() {
                        return view! { <p class="hint">"None yet: saving here keeps what the file held before."</p> }.into_any();
                    }
                    versions
                        .into_iter()
                        .map(|version| {
                            let id = version.id.clone();
                            view! {
                                <p class="version">
                                    {format!("Saved over at {} ({})", format_utc(version.saved_at), catalog::bytes_text(version.size))}
                                    " "
                                    <button type="button" on:click=move |_| { restore.dispatch(id.clone()); }>"Restore"</button>
                                </p>
                            }
                        })
                        .collect_view()
                        .into_any()
                })}
            </Suspense>
        </div>
    }
}

/// The CodeMirror editor (bundled among the site's assets, see `app/js/code-editor.js`) in `code`, showing
/// `text` whenever it is set (a file loaded, a version restored). Returns what the editor holds now: read when
/// saving, rather than copied into `text` at every keystroke (slow for a big file).
fn code_editor(
    code: NodeRef<leptos::html::Div>,
    text: RwSignal<String>,
    language: &'static str,
    outcome: RwSignal<Option<Result<String, String>>>,
) -> impl Fn() -> Option<String> + Copy + Send + Sync + 'static {
    #[cfg(feature = "hydrate")]
    {
        let editor = StoredValue::new_local(None::<browser::CodeEditor>);
        Effect::new(move |_| {
            let content = text.get();
            let Some(element) = code.get() else { return };
            let shown = editor.with_value(|shown| {
                let shown = shown.as_ref()?;
                if shown.text() != content {
                    shown.set_text(&content);
                }
                Some(())
            });
            if shown.is_none() {
                match browser::CodeEditor::new(&element, &content, language) {
                    Ok(made) => editor.set_value(Some(made)),
                    Err(_) => outcome.set(Some(Err("the editor did not load; reload the page".into()))),
                }
            }
        });
        on_cleanup(move || {
            if let Some(shown) = editor.try_update_value(Option::take).flatten() {
                shown.destroy();
            }
        });
        move || editor.try_with_value(|shown| shown.as_ref().map(browser::CodeEditor::text)).flatten()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        // On the server the editor renders empty; the browser makes it after hydration.
        let _ = (code, text, language, outcome);
        || None
    }
}

#[cfg(feature = "hydrate")]
mod browser {
    use catalog::ServerId;
    use leptos::prelude::*;
    use wasm_bindgen::JsCast as _;
    use wasm_bindgen::closure::Closure;
    use wasm_bindgen::prelude::*;

    #[wasm_bindgen]
    extern "C" {
        /// `app/js/code-editor.js`'s editor.
        pub type CodeEditor;
        #[wasm_bindgen(constructor, catch)]
        pub fn new(parent: &web_sys::HtmlElement, doc: &str, language: &str) -> Result<CodeEditor, JsValue>;
        #[wasm_bindgen(method)]
        pub fn text(this: &CodeEditor) -> String;
        #[wasm_bindgen(method, js_name = setText)]
        pub fn set_text(this: &CodeEditor, doc: &str);
        #[wasm_bindgen(method)]
        pub fn destroy(this: &CodeEditor);
    }

    /// Sends the files with an `XMLHttpRequest`, whose upload events drive the progress bar (fetch has none).
    pub fn upload(
        id: &ServerId,
        dir: &str,
        files: &web_sys::FileList,
        progress: RwSignal<Option<(f64, f64)>>,
        outcome: RwSignal<Option<Result<String, String>>>,
        changed: RwSignal<u32>,
    ) {
        let Ok(form) = web_sys::FormData::new() else { return };
        let mut count = 0;
        for index in 0..files.length() {
            if let Some(file) = files.get(index) {
                let _ = form.append_with_blob_and_filename("file", &file, &file.name());
                count += 1;
            }
        }
        if count == 0 {
            return;
        }
        let Ok(request) = web_sys::XmlHttpRequest::new() else { return };
        let url = format!("/api/servers/{id}/files/upload?path={}", urlencoding::encode(dir));
        if request.open("POST", &url).is_err() {
            return;
        }
        progress.set(Some((0.0, 1.0)));
        outcome.set(None);
        let on_progress = Closure::<dyn Fn(web_sys::ProgressEvent)>::new(move |event: web_sys::ProgressEvent| {
            if event.length_computable() {
                progress.set(Some((event.loaded(), event.total())));
            }
        });
        if let Ok(upload) = request.upload() {
            upload.set_onprogress(Some(on_progress.as_ref().unchecked_ref()));
        }
        let finished = request.clone();
        let on_done = Closure::<dyn Fn()>::new(move || {
            let status = finished.status().unwrap_or(0);
            if (200..300).contains(&status) {
                outcome.set(Some(Ok(format!("Uploaded {count} file(s)"))));
            } else {
                let body = finished.response_text().ok().flatten().unwrap_or_default();
                let message = serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|body| body["error"]["message"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| format!("the upload failed ({status})"));
                outcome.set(Some(Err(message)));
            }
            changed.update(|n| *n += 1);
        });
        request.set_onloadend(Some(on_done.as_ref().unchecked_ref()));
        let _ = request.send_with_opt_form_data(Some(&form));
        // They live as long as the request; the page keeps few.
        on_progress.forget();
        on_done.forget();
    }
}

/// Server-side: the file service the server provides.
#[cfg(feature = "ssr")]
pub mod ssr {
    use std::future::Future;
    use std::sync::Arc;

    use catalog::ServerId;
    use catalog::account::{SftpAccess, User};
    use catalog::files::{FileEntry, FileListing, FileVersion, SearchResults};

    use crate::context::BoxFuture;
    use crate::error::AppError;

    /// What the file manager's server functions need from the server's file service, provided as
    /// `Arc<dyn Files>` in context. Every method checks what `user` may touch.
    pub trait Files: Send + Sync + 'static {
        fn list<'a>(
            &'a self,
            user: &'a User,
            id: &'a ServerId,
            dir: &'a str,
        ) -> BoxFuture<'a, Result<FileListing, AppError>>;
        fn read_text<'a>(
            &'a self,
            user: &'a User,
            id: &'a ServerId,
            path: &'a str,
        ) -> BoxFuture<'a, Result<String, AppError>>;
        fn save_text<'a>(
            &'a self,
            user: &'a User,
            id: &'a ServerId,
            path: &'a str,
            text: String,
        ) -> BoxFuture<'a, Result<FileEntry, AppError>>;
        /// `mkdir`, `rename`, `copy`, `delete` or `extract`.
        fn change<'a>(
            &'a self,
            user: &'a User,
            id: &'a ServerId,
            change: &'a str,
            path: &'a str,
            to: &'a str,
        ) -> BoxFuture<'a, Result<(), AppError>>;
        fn versions<'a>(
            &'a self,
            user: &'a User,
            id: &'a ServerId,
            path: &'a str,
        ) -> BoxFuture<'a, Result<Vec<FileVersion>, AppError>>;
        fn restore_version<'a>(
            &'a self,
            user: &'a User,
            id: &'a ServerId,
            path: &'a str,
            version: &'a str,
        ) -> BoxFuture<'a, Result<FileEntry, AppError>>;
        /// `delete` or `compress` (into `to`) of all of `paths`.
        fn change_all<'a>(
            &'a self,
            user: &'a User,
            id: &'a ServerId,
            change: &'a str,
            paths: &'a [String],
            to: &'a str,
        ) -> BoxFuture<'a, Result<(), AppError>>;
        fn search<'a>(
            &'a self,
            user: &'a User,
            id: &'a ServerId,
            text: &'a str,
            content: bool,
        ) -> BoxFuture<'a, Result<SearchResults, AppError>>;
        fn sftp_access<'a>(
            &'a self,
            user: &'a User,
            id: &'a ServerId,
        ) -> BoxFuture<'a, Result<Option<SftpAccess>, AppError>>;
    }

    pub async fn with_files<T, F, Fut>(body: F) -> Result<T, AppError>
    where
        F: FnOnce(Arc<dyn Files>, User) -> Fut,
        Fut: Future<Output = Result<T, AppError>>,
    {
        crate::context::with_service(body).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_is_named_beside_its_original() {
        assert_eq!(copy_name("server.properties"), "server copy.properties");
        assert_eq!(copy_name("world/level.dat"), "world/level copy.dat");
        assert_eq!(copy_name("world"), "world copy");
        assert_eq!(copy_name("config/.hidden"), "config/.hidden copy");
        assert_eq!(copy_name("a/b.tar.gz"), "a/b.tar copy.gz");
    }
}
