"""``keel demo``: load the demo's month into a directory of its own, then serve it."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from pathlib import Path

import click
from rich.console import Console

from keel.demo.home import DemoDirRefused, DemoHome, default_dir
from keel.demo.traffic import DEFAULT_REQUESTS, DEFAULT_SEED

console = Console(soft_wrap=True)


@click.command("demo")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="Port to serve the demo on (127.0.0.1 only; 0: any free port).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              metavar="DIR",
              help="The demo's own directory: new, empty, or made by keel demo; never a "
                   "real keel store [default: keel-demo beside the user's keel data "
                   "directory, ~/.local/share/keel-demo].")
@click.option("--requests", type=click.IntRange(200, 100_000), default=DEFAULT_REQUESTS,
              show_default=True, help="About how many requests the month holds.")
@click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True,
              help="Seed of the traffic: the same seed gives the same month.")
@click.option("--reset", is_flag=True,
              help="Empty the demo directory and load the month again (ending now).")
@click.option("--no-serve", is_flag=True, help="Load the month (if needed), print the story "
                                              "and exit, without starting the server.")
def demo(port: int, data_dir: Path | None, requests: int, seed: int, reset: bool,
         no_serve: bool) -> None:
    """Start keel on a store of its own, filled with 30 days of made-up traffic, to see
    what keel shows before sending it any of yours.

    The month is one company's, ending now: a support assistant with tools (two teams), a
    contract summariser whose answers a lawyer reviews, a research assistant that answers
    from retrieved passages; prompts with versions and labels, a route with a fallback, a
    budget, guard policies and an eval suite. keel made it all itself: every request went
    through its gateway to offline mock providers, and every piece of feedback, business
    outcome and review decision through its services. Something happens in it: a prompt
    change, a provider outage, cost creep, a blocked prompt injection, a rejected summary;
    the command lists them.

    \b
    The first run loads the month (about 30 seconds for the default size); later runs
    reuse it until --reset. Then it serves like `keel serve` on http://127.0.0.1:PORT/:
    open it and log in with the admin key it prints. The demo reads no KEEL_* setting,
    uses no Redis and exports nothing: its config is keel's demo config, its store its
    own directory, which is never the one `keel serve` uses.
    """
    from keel.demo.facts import story_lines
    from keel.demo.load import demo_config, ensure_admin_key, read_facts

    home = DemoHome(data_dir or default_dir())
    try:
        home.check()
        if reset:
            home.reset()
        marker = home.loaded()
        if marker is None:
            if home.marker() is not None:
                home.reset()  # an interrupted load: start again
            marker = _load(home, requests, seed)
        elif _asked_other(marker, seed, requests):
            click.echo(f"keel demo: {home.path} holds the month loaded with --seed "
                       f"{marker.get('seed')} --requests {marker.get('requests')}; add --reset "
                       "to load it again with these", err=True)
        else:
            days = (time.time() - float(str(marker.get("now")))) / 86400
            if days >= 1:
                click.echo(f"keel demo: its month ended {days:.0f} day(s) ago; --reset loads "
                           "one that ends now", err=True)
    except DemoDirRefused as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    facts = asyncio.run(read_facts(home))
    console.print(f"[bold]keel demo[/bold]: {home.path}")
    console.print("what happened this month (UTC):")
    for line in story_lines(facts):
        console.print(f"  {line}", markup=False, highlight=False)
    key = asyncio.run(ensure_admin_key(home))
    console.print("admin key (kept in the demo directory):")
    console.print(f"  [bold]{key}[/bold]", highlight=False)
    if no_serve:
        return
    from keel.server.serve import run_server

    where = f"http://127.0.0.1:{port}/" if port else "the address printed below"
    console.print(f"open [bold]{where}[/bold] and log in with the admin key; Ctrl-C stops")
    run_server(home.settings(port), demo_config(int(str(marker.get("requests")))),
               console=console,
               config_source="keel's demo config", store_source="the demo's directory",
               admin_key_note="admin key: printed above")


def _asked_other(marker: dict[str, object], seed: int, requests: int) -> bool:
    """Whether the command line asks for another month than the one loaded."""
    ctx = click.get_current_context()
    named = {name for name in ("seed", "requests")
             if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE}
    return any(marker.get(name) != value for name, value in
               (("seed", seed), ("requests", requests)) if name in named)


def _load(home: DemoHome, requests: int, seed: int) -> dict[str, object]:
    from keel.demo.load import load

    now = time.time()
    home.claim(seed=seed, requests=requests, now=now)
    click.echo(f"keel demo: loading 30 days of traffic (about {requests} requests) into "
               f"{home.path} ...", err=True)
    quiet = logging.getLogger("keel")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # the month's outage and audit checkpoints: not news
    try:
        loaded = asyncio.run(load(home, requests=requests, seed=seed, now=now))
    finally:
        quiet.setLevel(level)
    home.complete(loaded_at=time.time(), sent=loaded.requests, seconds=round(loaded.seconds, 1))
    click.echo(f"keel demo: {loaded.requests} requests in {loaded.sessions} conversations, "
               f"{loaded.reactions.feedback} feedback, {loaded.reactions.outcomes} outcomes, "
               f"{loaded.reactions.decided} review decisions, {loaded.eval_runs} eval runs; "
               f"loaded in {loaded.seconds:.1f} s", err=True)
    marker = home.loaded()
    assert marker is not None
    return marker
