"""``hub keys …``: rotate the data key online, retire old keys, rotate the blind-index key
offline."""

from __future__ import annotations

import dataclasses
import os
import secrets

import click

from hub.cli_support import CliState, echo_json, fail, run_with_context
from hub.context import HubContext, keys_path
from hub.index_rotation import rotate_index
from hub.keys import load_keyring


def register(cli: click.Group) -> None:
    """Add the ``keys`` group."""

    @cli.group()
    def keys() -> None:
        """Field encryption keys: rotate, retire; the blind-index key: rotate-index."""

    @keys.command("rotate")
    @click.pass_obj
    def keys_rotate(state: CliState) -> None:
        """Add a new data key, make it active and re-encrypt every stored value with it, in
        small batches while the hub keeps running. Prints the new key id and the old ones
        (``old_keys``). Restart running hubs afterwards so they encrypt with the new key,
        run rotate once more, then retire the old keys.

        \b
        Example:
          hub keys rotate && hub keys retire k1a2b3c4
        """
        if os.environ.get("HUB_KEYS"):
            fail("keys come from $HUB_KEYS: rotate in the key file, then update the variable")
        path = keys_path(state.config)
        ring = load_keyring(path)
        kid = "k" + secrets.token_hex(4)
        new = dataclasses.replace(
            ring,
            data_keys=(*ring.data_keys, (kid, secrets.token_bytes(32))),
            active_data_key=kid,
        )
        new.write(path)

        async def work(ctx: HubContext) -> dict[str, int]:
            return await ctx.store.reencrypt(new.cipher())

        counts = run_with_context(state, work)
        unreadable = counts.pop("unreadable", 0)
        # The ids `hub keys retire` takes once running hubs have restarted.
        old = [old_kid for old_kid, _key in ring.data_keys]
        echo_json(
            {"active_key": kid, "reencrypted": counts, "unreadable": unreadable, "old_keys": old}
        )
        if unreadable:
            click.echo(
                f"warning: {unreadable} stored value(s) decrypt with no key (damaged or tampered "
                "with); they were left as they are and keep their key in use (the log names "
                "them)",
                err=True,
            )

    @keys.command("retire")
    @click.argument("key_id")
    @click.pass_obj
    def keys_retire(state: CliState, key_id: str) -> None:
        """Remove an old data key from the key file, once nothing is encrypted with it.

        \b
        Example:
          hub keys retire k1a2b3c4
        """
        if os.environ.get("HUB_KEYS"):
            # The ring would be the variable's, written over the key file's own keys.
            fail("keys come from $HUB_KEYS: retire in the key file, then update the variable")
        path = keys_path(state.config)
        ring = load_keyring(path)
        if key_id == ring.active_data_key:
            fail(f"{key_id} is the active key; rotate first")
        if key_id not in dict(ring.data_keys):
            fail(f"no data key {key_id!r} in {path}")
        if run_with_context(state, lambda ctx: ctx.store.key_in_use(key_id)):
            fail(
                f"values are still encrypted with {key_id}; run 'hub keys rotate' again (a value "
                "that decrypts with no key keeps its key in use: rotate reports them)"
            )
        kept = tuple((k, v) for k, v in ring.data_keys if k != key_id)
        dataclasses.replace(ring, data_keys=kept).write(path)
        click.echo(f"retired {key_id}")

    @keys.command("rotate-index")
    @click.pass_obj
    def keys_rotate_index(state: CliState) -> None:
        """Replace the blind-index key (the HMAC key of identity match keys and consent
        client values) and re-blind everything stored with it, in one transaction. Offline:
        stop every hub using the store first (it refuses while another one does).

        The new key goes to the key file as pending first, becomes the index key once the
        store is re-keyed, and the old key is dropped. Interrupted, run it again: it takes
        up the pending key (a hub that opens a store already re-keyed promotes it itself).
        Prints the new key's check value and what was re-blinded; a client record that
        decrypts with no key loses its match keys (``unreadable``). Match keys kept from a
        client record's earlier versions are made again from its stored version only.

        \b
        Example:
          hub keys rotate-index
        """
        if os.environ.get("HUB_KEYS"):
            fail("keys come from $HUB_KEYS: rotate in the key file, then update the variable")
        path = keys_path(state.config)
        before = load_keyring(path)
        echo_json(run_with_context(state, lambda ctx: rotate_index(ctx, path, before)))
