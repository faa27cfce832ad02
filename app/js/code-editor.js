// The file manager's text editor: CodeMirror 6 with line numbers and highlighting for the files game servers
// keep (properties, YAML, JSON, TOML, INI, logs). scripts/setup.sh bundles this into one script among the
// site's assets (public/vendor/codemirror/), which defines `CodeEditor` for the WASM app to drive.
import { EditorView, keymap, lineNumbers, highlightActiveLine, highlightActiveLineGutter, drawSelection } from "@codemirror/view";
import { EditorState } from "@codemirror/state";
import { StreamLanguage, syntaxHighlighting, defaultHighlightStyle } from "@codemirror/language";
import { history, defaultKeymap, historyKeymap, indentWithTab } from "@codemirror/commands";
import { json } from "@codemirror/lang-json";
import { properties } from "@codemirror/legacy-modes/mode/properties";
import { toml } from "@codemirror/legacy-modes/mode/toml";
import { yaml } from "@codemirror/legacy-modes/mode/yaml";

// Game server logs: a time at the start of a line, and the level words that matter when reading one.
const log = {
  name: "log",
  token(stream) {
    if (stream.sol() && stream.match(/^\[?\d{1,2}:\d{2}:\d{2}(\.\d+)?\]?/)) return "comment";
    if (stream.match(/^(ERROR|SEVERE|FATAL|Exception)\b/)) return "invalid";
    if (stream.match(/^WARN(ING)?\b/)) return "keyword";
    if (stream.match(/^INFO\b/)) return "atom";
    stream.next();
    return null;
  },
};

// The names are catalog::files::language_of's.
const languages = {
  properties: () => StreamLanguage.define(properties),
  ini: () => StreamLanguage.define(properties),
  yaml: () => StreamLanguage.define(yaml),
  toml: () => StreamLanguage.define(toml),
  json: () => json(),
  log: () => StreamLanguage.define(log),
};

globalThis.CodeEditor = class CodeEditor {
  constructor(parent, doc, language) {
    this.extensions = [
      lineNumbers(),
      highlightActiveLineGutter(),
      history(),
      drawSelection(),
      highlightActiveLine(),
      syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
      keymap.of([...defaultKeymap, ...historyKeymap, indentWithTab]),
      EditorView.contentAttributes.of({ "aria-label": "File content", spellcheck: "false" }),
      languages[language]?.() ?? [],
    ];
    this.view = new EditorView({ parent, state: EditorState.create({ doc, extensions: this.extensions }) });
  }

  text() {
    return this.view.state.doc.toString();
  }

  // A new document (a restored version): its own undo history.
  setText(doc) {
    this.view.setState(EditorState.create({ doc, extensions: this.extensions }));
  }

  destroy() {
    this.view.destroy();
  }
};
