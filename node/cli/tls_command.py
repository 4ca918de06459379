"""`shoal tls`: make the cluster CA and the agents' certificates for the API.

How this works: `shoal tls ca --out DIR` writes a new CA into DIR;
`shoal tls cert NAME --ca DIR --ip ADDR --dns HOST --out DIR` writes a
certificate for agent NAME signed by it, valid for those addresses (an
agent's API address and the address it gossips from, which is where other
agents reach its API).  The agent takes them as `--api-tls-cert`,
`--api-tls-key`, `--api-tls-ca`; the client commands as `--ca`
(node.cli.client).  The generation lives in node.cli.certs, imported when a
command runs so that `shoal --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path

import click

from node.cli.client import fail


@click.group("tls")
def tls() -> None:
    """Make a cluster CA and agent certificates for the API's TLS."""


@tls.command("ca")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Directory to write into.")
def tls_ca(out_dir: str) -> None:
    """Write a new cluster CA: ca.pem (give it to agents and clients) and ca-key.pem (keep it safe)."""
    from node.cli.certs import CertError, make_ca

    try:
        cert, key = make_ca(Path(out_dir))
    except (CertError, OSError) as e:
        fail(str(e))
    click.echo(f"wrote {cert} and {key} (mode 0600)")


@tls.command("cert")
@click.argument("name")
@click.option("--ca", "ca_dir", required=True, type=click.Path(file_okay=False), help="Directory of the CA.")
@click.option("--ip", "ips", multiple=True, help="An IP address the agent's API is reached at; repeatable.")
@click.option("--dns", "dns", multiple=True, help="A host name the agent's API is reached at; repeatable.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Directory to write into.")
def tls_cert(name: str, ca_dir: str, ips: tuple[str, ...], dns: tuple[str, ...], out_dir: str) -> None:
    """Write NAME.pem and NAME-key.pem for one agent, signed by the CA."""
    from node.cli.certs import CertError, make_cert

    try:
        cert, key = make_cert(name, Path(ca_dir), Path(out_dir), ips, dns)
    except (CertError, OSError) as e:
        fail(str(e))
    click.echo(f"wrote {cert} and {key} (mode 0600)")
