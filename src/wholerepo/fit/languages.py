"""Which grammar reads a file, and the tree-sitter queries that find its imports, definitions,
references and bodies.

Grammars come from the official per-language wheels (``tree-sitter-python``, ...), which carry
their compiled parsers: nothing is downloaded at run time. A grammar that is not installed, or a
query pattern a grammar version does not know, is left out (the file then falls back to plain
truncation, or the pattern finds nothing); it never raises.

Capture names the rest of fit/ relies on:

- ``import``: a node holding one import (language-specific; graph.py reads it)
- ``def`` / ``ref``: the name of a definition / of a referenced symbol
- ``body``: a function or method body, elided in a skeleton
- ``literal``: a data literal (list, object, initializer), elided in a skeleton when long
- ``doc``: a docstring or block comment, cut to its first paragraph in a skeleton when long
- ``package``: Java's package name
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Extension -> language. ``.h`` is read as C, and as C++ when C does not parse it.
EXTENSIONS = {
    "py": "python",
    "pyi": "python",
    "js": "javascript",
    "jsx": "javascript",
    "mjs": "javascript",
    "cjs": "javascript",
    "ts": "typescript",
    "mts": "typescript",
    "cts": "typescript",
    "tsx": "tsx",
    "go": "go",
    "java": "java",
    "rs": "rust",
    "c": "c",
    "h": "c",
    "cc": "cpp",
    "cpp": "cpp",
    "cxx": "cpp",
    "c++": "cpp",
    "hh": "cpp",
    "hpp": "cpp",
    "hxx": "cpp",
    "h++": "cpp",
    "ipp": "cpp",
    "tpp": "cpp",
}

# language -> (module, function returning the grammar's pointer)
_GRAMMARS = {
    "python": ("tree_sitter_python", "language"),
    "javascript": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "go": ("tree_sitter_go", "language"),
    "java": ("tree_sitter_java", "language"),
    "rust": ("tree_sitter_rust", "language"),
    "c": ("tree_sitter_c", "language"),
    "cpp": ("tree_sitter_cpp", "language"),
}

_JS_COMMON = [
    "(import_statement source: (string) @import)",
    "(export_statement source: (string) @import)",
    "((call_expression function: (identifier) @_f arguments: (arguments . (string) @import))"
    ' (#eq? @_f "require"))',
    "(call_expression function: (import) arguments: (arguments . (string) @import))",
    "(function_declaration name: (identifier) @def)",
    "(generator_function_declaration name: (identifier) @def)",
    "(method_definition name: (property_identifier) @def)",
    "(program (lexical_declaration (variable_declarator name: (identifier) @def)))",
    "(program (variable_declaration (variable_declarator name: (identifier) @def)))",
    "(export_statement declaration: (lexical_declaration (variable_declarator name: (identifier) @def)))",
    "(call_expression function: (identifier) @ref)",
    "(call_expression function: (member_expression property: (property_identifier) @ref))",
    "(new_expression constructor: (identifier) @ref)",
    "(class_heritage (identifier) @ref)",
    "(function_declaration body: (statement_block) @body)",
    "(generator_function_declaration body: (statement_block) @body)",
    "(function_expression body: (statement_block) @body)",
    "(method_definition body: (statement_block) @body)",
    "(arrow_function body: (statement_block) @body)",
    "(class_static_block body: (statement_block) @body)",
    "(array) @literal",
    "(object) @literal",
    "(template_string) @literal",
    "(comment) @doc",
]
_JS = [
    *_JS_COMMON,
    "(class_declaration name: (identifier) @def)",
    "(jsx_opening_element name: (identifier) @ref)",
    "(jsx_self_closing_element name: (identifier) @ref)",
]
_TS = [
    *_JS_COMMON,
    "(class_declaration name: (type_identifier) @def)",
    "(abstract_class_declaration name: (type_identifier) @def)",
    "(interface_declaration name: (type_identifier) @def)",
    "(type_alias_declaration name: (type_identifier) @def)",
    "(enum_declaration name: (identifier) @def)",
    "(function_signature name: (identifier) @def)",
    "(type_identifier) @ref",
]
_QUERIES: dict[str, list[str]] = {
    "python": [
        "(import_statement) @import",
        "(import_from_statement) @import",
        "(future_import_statement) @import",
        "(function_definition name: (identifier) @def)",
        "(class_definition name: (identifier) @def)",
        "(module (expression_statement (assignment left: (identifier) @def)))",
        "(call function: (identifier) @ref)",
        "(call function: (attribute attribute: (identifier) @ref))",
        "(class_definition superclasses: (argument_list (identifier) @ref))",
        "(class_definition superclasses: (argument_list (attribute attribute: (identifier) @ref)))",
        "(type (identifier) @ref)",
        "(decorator (identifier) @ref)",
        "(function_definition body: (block) @body)",
        "(class_definition body: (block . (expression_statement (string) @doc)))",
        "(module . (expression_statement (string) @doc))",
        "(list) @literal",
        "(dictionary) @literal",
        "(set) @literal",
        "(tuple) @literal",
    ],
    "javascript": _JS,
    "typescript": _TS,
    "tsx": [
        *_TS,
        "(jsx_opening_element name: (identifier) @ref)",
        "(jsx_self_closing_element name: (identifier) @ref)",
    ],
    "go": [
        "(import_spec path: (interpreted_string_literal) @import)",
        "(function_declaration name: (identifier) @def)",
        "(method_declaration name: (field_identifier) @def)",
        "(type_spec name: (type_identifier) @def)",
        "(source_file (const_declaration (const_spec name: (identifier) @def)))",
        "(source_file (var_declaration (var_spec name: (identifier) @def)))",
        "(call_expression function: (identifier) @ref)",
        "(call_expression function: (selector_expression field: (field_identifier) @ref))",
        "(type_identifier) @ref",
        "(function_declaration body: (block) @body)",
        "(method_declaration body: (block) @body)",
        "(func_literal body: (block) @body)",
        "(literal_value) @literal",
        "(comment) @doc",
    ],
    "java": [
        "(import_declaration) @import",
        "(package_declaration (scoped_identifier) @package)",
        "(package_declaration (identifier) @package)",
        "(class_declaration name: (identifier) @def)",
        "(interface_declaration name: (identifier) @def)",
        "(enum_declaration name: (identifier) @def)",
        "(record_declaration name: (identifier) @def)",
        "(annotation_type_declaration name: (identifier) @def)",
        "(method_declaration name: (identifier) @def)",
        "(method_invocation name: (identifier) @ref)",
        "(object_creation_expression type: (type_identifier) @ref)",
        "(type_identifier) @ref",
        "(method_declaration body: (block) @body)",
        "(constructor_declaration body: (constructor_body) @body)",
        "(compact_constructor_declaration body: (block) @body)",
        "(static_initializer (block) @body)",
        "(lambda_expression body: (block) @body)",
        "(array_initializer) @literal",
        "(block_comment) @doc",
    ],
    "rust": [
        "(use_declaration argument: (_) @import)",
        "(mod_item) @import",
        "(extern_crate_declaration) @import",
        "(function_item name: (identifier) @def)",
        "(function_signature_item name: (identifier) @def)",
        "(struct_item name: (type_identifier) @def)",
        "(enum_item name: (type_identifier) @def)",
        "(union_item name: (type_identifier) @def)",
        "(trait_item name: (type_identifier) @def)",
        "(type_item name: (type_identifier) @def)",
        "(const_item name: (identifier) @def)",
        "(static_item name: (identifier) @def)",
        "(macro_definition name: (identifier) @def)",
        "(call_expression function: (identifier) @ref)",
        "(call_expression function: (field_expression field: (field_identifier) @ref))",
        "(call_expression function: (scoped_identifier name: (identifier) @ref))",
        "(macro_invocation macro: (identifier) @ref)",
        "(type_identifier) @ref",
        "(function_item body: (block) @body)",
        "(closure_expression body: (block) @body)",
        "(array_expression) @literal",
        "(block_comment) @doc",
    ],
    "c": [
        "(preproc_include path: (_) @import)",
        "(function_definition declarator: (function_declarator declarator: (identifier) @def))",
        "(function_definition declarator: (pointer_declarator"
        " declarator: (function_declarator declarator: (identifier) @def)))",
        "(struct_specifier name: (type_identifier) @def body: (_))",
        "(union_specifier name: (type_identifier) @def body: (_))",
        "(enum_specifier name: (type_identifier) @def body: (_))",
        "(type_definition declarator: (type_identifier) @def)",
        "(preproc_def name: (identifier) @def)",
        "(preproc_function_def name: (identifier) @def)",
        "(call_expression function: (identifier) @ref)",
        "(type_identifier) @ref",
        "(function_definition body: (compound_statement) @body)",
        "(initializer_list) @literal",
        "(comment) @doc",
    ],
    "cpp": [
        "(preproc_include path: (_) @import)",
        "(function_definition declarator: (function_declarator declarator: (identifier) @def))",
        "(function_definition declarator: (function_declarator declarator: (field_identifier) @def))",
        "(function_definition declarator: (function_declarator"
        " declarator: (qualified_identifier name: (identifier) @def)))",
        "(class_specifier name: (type_identifier) @def body: (_))",
        "(struct_specifier name: (type_identifier) @def body: (_))",
        "(enum_specifier name: (type_identifier) @def body: (_))",
        "(type_definition declarator: (type_identifier) @def)",
        "(alias_declaration name: (type_identifier) @def)",
        "(preproc_def name: (identifier) @def)",
        "(preproc_function_def name: (identifier) @def)",
        "(call_expression function: (identifier) @ref)",
        "(call_expression function: (field_expression field: (field_identifier) @ref))",
        "(call_expression function: (qualified_identifier name: (identifier) @ref))",
        "(type_identifier) @ref",
        "(function_definition body: (compound_statement) @body)",
        "(lambda_expression body: (compound_statement) @body)",
        "(initializer_list) @literal",
        "(comment) @doc",
    ],
}


def language_of(path: str) -> str | None:
    """The language fit/ parses ``path`` as, or None."""
    name = path.rsplit("/", 1)[-1]
    if "." not in name:
        return None
    return EXTENSIONS.get(name.rsplit(".", 1)[-1].lower())


@dataclass(frozen=True)
class Grammar:
    """A loaded grammar: a parser and its one combined query."""

    name: str
    parser: Any  # tree_sitter.Parser
    query: Any  # tree_sitter.Query
    cursor: Callable[[], Any]  # a fresh QueryCursor over ``query``


@functools.cache
def grammar(language: str) -> Grammar | None:
    """The grammar for ``language``, or None when its wheel (or tree-sitter) is not installed."""
    try:
        import tree_sitter as ts

        module_name, function = _GRAMMARS[language]
        module = importlib.import_module(module_name)
        lang = ts.Language(getattr(module, function)())
    except (ImportError, KeyError, AttributeError, ValueError, TypeError):
        return None
    query = _query(ts, lang, _QUERIES[language])
    parser = ts.Parser(lang)
    return Grammar(language, parser, query, lambda: ts.QueryCursor(query))


def _query(ts: Any, lang: Any, patterns: list[str]) -> Any:
    """One query of every pattern this grammar version accepts."""
    try:
        return ts.Query(lang, "\n".join(patterns))
    except Exception:  # a node type this grammar version lacks: keep the patterns that compile
        kept = []
        for pattern in patterns:
            try:
                ts.Query(lang, pattern)
            except Exception:
                continue
            kept.append(pattern)
        return ts.Query(lang, "\n".join(kept) or "(ERROR) @_never")


def versions() -> str:
    """The installed versions of tree-sitter and of every grammar wheel (for cache keys)."""
    from importlib.metadata import PackageNotFoundError, version

    found = []
    names = ["tree-sitter", *sorted({m.replace("_", "-") for m, _ in _GRAMMARS.values()})]
    for name in names:
        try:
            found.append(f"{name}={version(name)}")
        except PackageNotFoundError:
            found.append(f"{name}=missing")
    return ",".join(found)
