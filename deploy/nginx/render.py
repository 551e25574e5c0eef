#!/usr/bin/env python3
"""Render cambist.conf.template into an nginx config (stdlib only, Python 3.11+).

    python3 deploy/nginx/render.py --server-name exchange.example.com \\
        --gateway 10.0.0.11:8000 --gateway 10.0.0.12:8000 \\
        --certificate /etc/letsencrypt/live/exchange.example.com/fullchain.pem \\
        --certificate-key /etc/letsencrypt/live/exchange.example.com/privkey.pem \\
        > /etc/nginx/conf.d/cambist.conf

Only ``${NGINX_*}`` placeholders are replaced; nginx's own ``$variables`` are left alone. A
placeholder without a value is an error, so a half-rendered file never reaches nginx.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent / "cambist.conf.template"
PLACEHOLDER = re.compile(r"\$\{(NGINX_[A-Z0-9_]+)\}")
MAX_FAILS = 3
FAIL_TIMEOUT_S = 10


def upstream_servers(
    gateways: Sequence[str], max_fails: int = MAX_FAILS, fail_timeout_s: int = FAIL_TIMEOUT_S
) -> str:
    """The ``server`` lines of the upstream block, one per ``host:port`` gateway."""
    if not gateways:
        raise ValueError("at least one gateway (host:port) is needed")
    lines = []
    for gateway in gateways:
        if not re.fullmatch(r"[A-Za-z0-9.\-\[\]:]+:\d{1,5}", gateway):
            raise ValueError(f"a gateway is host:port, got {gateway!r}")
        lines.append(f"    server {gateway} max_fails={max_fails} fail_timeout={fail_timeout_s}s;")
    return "\n".join(lines)


def render(values: Mapping[str, str], template: str | None = None) -> str:
    """The template with every ``${NGINX_*}`` replaced from ``values`` (all of them must be given)."""
    text = TEMPLATE.read_text() if template is None else template
    missing = sorted({name for name in PLACEHOLDER.findall(text) if name not in values})
    if missing:
        raise KeyError(f"no value for {', '.join(missing)}")
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], text)


def values_for(
    *,
    server_name: str,
    gateways: Sequence[str],
    certificate: str,
    certificate_key: str,
    public_origin: str | None = None,
    http_listen: str = "80",
    https_listen: str = "443",
    access_log: str = "/var/log/nginx/cambist.access.log",
    max_fails: int = MAX_FAILS,
    fail_timeout_s: int = FAIL_TIMEOUT_S,
) -> dict[str, str]:
    return {
        "NGINX_SERVER_NAME": server_name,
        "NGINX_PUBLIC_ORIGIN": public_origin or f"https://{server_name}",
        "NGINX_HTTP_LISTEN": http_listen,
        "NGINX_HTTPS_LISTEN": https_listen,
        "NGINX_UPSTREAM_SERVERS": upstream_servers(gateways, max_fails, fail_timeout_s),
        "NGINX_TLS_CERTIFICATE": certificate,
        "NGINX_TLS_CERTIFICATE_KEY": certificate_key,
        "NGINX_ACCESS_LOG": access_log,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--server-name", required=True, help="public host name, e.g. exchange.example.com")
    parser.add_argument("--gateway", action="append", required=True, help="host:port of a gateway (repeat)")
    parser.add_argument("--certificate", required=True, help="PEM certificate chain (leaf first)")
    parser.add_argument("--certificate-key", required=True, help="PEM private key")
    parser.add_argument("--public-origin", help="redirect target, default https://<server-name>")
    parser.add_argument("--http-listen", default="80")
    parser.add_argument("--https-listen", default="443")
    parser.add_argument("--access-log", default="/var/log/nginx/cambist.access.log")
    parser.add_argument("--max-fails", type=int, default=MAX_FAILS)
    parser.add_argument("--fail-timeout", type=int, default=FAIL_TIMEOUT_S, help="seconds")
    args = parser.parse_args(argv)
    try:
        values = values_for(
            server_name=args.server_name,
            gateways=args.gateway,
            certificate=args.certificate,
            certificate_key=args.certificate_key,
            public_origin=args.public_origin,
            http_listen=args.http_listen,
            https_listen=args.https_listen,
            access_log=args.access_log,
            max_fails=args.max_fails,
            fail_timeout_s=args.fail_timeout,
        )
        sys.stdout.write(render(values))
    except (ValueError, KeyError) as error:
        sys.stderr.write(f"render.py: {error}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
