"""MkDocs hook: the CLI reference page (``reference/cli.md``), written from ``facestyle.cli.make_parser()`` at build time.

The page is never committed, so it cannot drift from the parser: every sub-command gets its usage line, what it
does and a table of its arguments. The parser is torch-free, so the docs build needs only the runtime.
"""

from __future__ import annotations

import argparse
import functools

from mkdocs.structure.files import File

PAGE = "reference/cli.md"
USAGE_WIDTH = 100  # usage lines wrap here, whatever the terminal that runs mkdocs
USAGE_PREFIX = " " * len("usage: ")  # continuation lines are indented past it; the page shows no "usage: "


def on_files(files, config):
    files.append(File.generated(config, PAGE, content=cli_reference_markdown()))
    return files


def cli_reference_markdown() -> str:
    from facestyle.cli import make_parser

    parser = make_parser()
    lines = [
        "# Command-line reference",
        "",
        "Generated from the parser of the installed `facestyle` command when these pages are built; "
        "`facestyle COMMAND --help` prints the same. Exit codes and output formats are in the "
        "[command-line contract](../cli-contract.md).",
        "",
        "## facestyle",
        "",
        *command_section(parser, parser.description or ""),
    ]
    for name, sub, help_text in subcommands(parser):
        lines += [f"## {name}", "", *command_section(sub, help_text)]
        for inner_name, inner, inner_help in subcommands(sub):
            lines += [f"### {name} {inner_name}", "", *command_section(inner, inner_help)]
    return "\n".join(lines) + "\n"


def subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser, str]]:
    """(name, parser, one-line help) per sub-command, in the order ``--help`` lists them; aliases once."""
    found, seen = [], set()
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
        for name, sub in action.choices.items():
            if id(sub) not in seen:
                seen.add(id(sub))
                found.append((name, sub, helps.get(name, "")))
    return found


def command_section(parser: argparse.ArgumentParser, summary: str) -> list[str]:
    parser.formatter_class = functools.partial(parser.formatter_class, width=USAGE_WIDTH)
    usage = "\n".join(line.removeprefix(USAGE_PREFIX) if i else line.removeprefix("usage: ")
                      for i, line in enumerate(parser.format_usage().rstrip().splitlines()))
    lines = [summary, ""] if summary else []
    if parser.description and parser.description != summary:
        lines += [parser.description, ""]
    lines += ["```text", usage, "```", ""]
    rows = [argument_row(parser, action) for action in parser._actions
            if action.help is not argparse.SUPPRESS and not isinstance(action, argparse._SubParsersAction)]
    if rows:
        lines += ["| argument | what |", "|---|---|", *rows, ""]
    if parser.epilog:
        lines += [parser.epilog, ""]
    return lines


def argument_row(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    return f"| {cell(argument_name(action))} | {cell(expanded_help(parser, action))} |"


def argument_name(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"`{action.metavar or action.dest}`"
    if action.nargs == 0:
        return ", ".join(f"`{s}`" for s in action.option_strings)
    metavar = action.metavar or (("{" + ",".join(map(str, action.choices)) + "}") if action.choices
                                 else action.dest.upper())
    if isinstance(metavar, tuple):
        metavar = " ".join(metavar)
    return ", ".join(f"`{s} {metavar}`" for s in action.option_strings)


def expanded_help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The help text as ``--help`` shows it (``%(default)s`` and the like filled in)."""
    text = action.help or ""
    if "%" not in text:
        return text
    params = {k: v for k, v in vars(action).items() if v is not argparse.SUPPRESS}
    params["prog"] = parser.prog
    if params.get("choices") is not None:
        params["choices"] = ", ".join(map(str, params["choices"]))
    return text % params


def cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")
