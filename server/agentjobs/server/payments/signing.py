"""The `signature` of a /provide_input answer: CIP-08 COSE_Sign1 by the agent's key.

MIP-003 defines it as "an Ed25519 signature (similar to CIP-08) of the response data,
verifiable with the agent's Ed25519 verification key". What is signed is the answer as a
JCS (RFC 8785) JSON object, bound to the question it answers:

    {"input_hash":"<the answer's input_hash>","job_id":"<job>","status_id":"<question>"}

carried inside the signature (COSE_Sign1 with the payload attached, untagged as CIP-30
wallets return it, hex) with the signer's address and verification key in its protected
header. A buyer verifies it with any CIP-08 library (pycardano: `cip8.verify(signature)`)
and then checks that the key is the agent's published one: the verification key hex (or
its hash: the signing address's payment part) must equal what GetAvailability / the
/availability answer publishes, and the payload must name its job, question and hash.

The key is a cardano-cli signing key file, e.g. the seller wallet's payment.skey, normal
or BIP32-extended; the seller's key makes the published key hash the seller's vkey hash.
Without a key file the signature is "" (NoSigner), as MIP-003 consumers accept today.

pycardano is imported only when a key is configured: importing it takes over a second.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import rfc8785

if TYPE_CHECKING:
    from pycardano import ExtendedSigningKey, SigningKey

Network = Literal["Preprod", "Mainnet"]

# cardano-cli's key file types, with the payload size each must have.
_NORMAL_KEY = "PaymentSigningKeyShelley_ed25519"
_EXTENDED_KEY = "PaymentExtendedSigningKeyShelley_ed25519_bip32"
_PAYLOAD_BYTES = {_NORMAL_KEY: 32, _EXTENDED_KEY: 128}


class SigningKeyError(ValueError):
    """The signing key file is unusable; the message never holds key material."""


class ResponseSigner(Protocol):
    @property
    def verification_key(self) -> str:
        """The Ed25519 verification key, 64 hex digits ("" without a key)."""
        ...

    @property
    def verification_key_hash(self) -> str:
        """Its blake2b-224 hash, 56 hex digits: a Cardano payment key hash ("" without)."""
        ...

    def sign_provide_input(self, *, job_id: str, status_id: str, input_hash: str) -> str: ...


def provide_input_payload(*, job_id: str, status_id: str, input_hash: str) -> str:
    """The exact text signed for one /provide_input answer."""
    body = {"input_hash": input_hash, "job_id": job_id, "status_id": status_id}
    return rfc8785.dumps(body).decode("utf-8")


class NoSigner:
    """No key configured: MIP-003's signature is answered as ""."""

    verification_key = ""
    verification_key_hash = ""

    def sign_provide_input(self, *, job_id: str, status_id: str, input_hash: str) -> str:
        return ""


class CoseSigner:
    """Signs with one Ed25519 key, read once from a cardano-cli .skey file."""

    def __init__(self, key_file: Path, network: Network) -> None:
        from pycardano import Network as CardanoNetwork
        from pycardano import PaymentExtendedSigningKey, PaymentSigningKey

        self._key = _read_key(
            key_file, {_NORMAL_KEY: PaymentSigningKey, _EXTENDED_KEY: PaymentExtendedSigningKey}
        )
        vkey = self._key.to_verification_key()
        # An extended key's chain code is not part of the key a verifier checks.
        plain = vkey.to_non_extended() if len(vkey.payload) > 32 else vkey
        self.verification_key: str = plain.payload.hex()
        self.verification_key_hash: str = plain.hash().payload.hex()
        self._network = CardanoNetwork.MAINNET if network == "Mainnet" else CardanoNetwork.TESTNET
        self._check_key_pair(key_file)

    def sign_provide_input(self, *, job_id: str, status_id: str, input_hash: str) -> str:
        from pycardano.cip import cip8

        payload = provide_input_payload(job_id=job_id, status_id=status_id, input_hash=input_hash)
        # attach_cose_key=False: the verification key travels in the protected header.
        signed: str = cip8.sign(payload, self._key, attach_cose_key=False, network=self._network)
        return signed

    def _check_key_pair(self, key_file: Path) -> None:
        # An extended key file stores its public half beside the private one; if they do
        # not belong together, every signature would fail for the key we publish.
        from pycardano.cip import cip8

        probe = self.sign_provide_input(job_id="probe", status_id="probe", input_hash="0" * 64)
        if not cip8.verify(probe)["verified"]:
            raise SigningKeyError(f"{key_file}: its public key does not match its private key")


def load_signer(key_file: Path | None, network: Network) -> ResponseSigner:
    """The signer for AGENTJOBS_SIGNING_KEY_FILE; NoSigner when it is not set."""
    return NoSigner() if key_file is None else CoseSigner(key_file, network)


def _read_key(
    key_file: Path, classes: dict[str, type[SigningKey] | type[ExtendedSigningKey]]
) -> SigningKey | ExtendedSigningKey:
    try:
        envelope = json.loads(key_file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SigningKeyError(f"cannot read the signing key file {key_file}: {exc}") from None
    except ValueError:
        raise SigningKeyError(f"{key_file} is not a cardano-cli key file (JSON)") from None
    if not isinstance(envelope, dict) or not isinstance(envelope.get("cborHex"), str):
        raise SigningKeyError(f"{key_file} has no cborHex: not a cardano-cli key file")
    key_type = envelope.get("type")
    if key_type not in classes:
        raise SigningKeyError(
            f"{key_file} holds a {key_type!r} key; expected {_NORMAL_KEY} or {_EXTENDED_KEY}"
        )
    try:
        key = classes[key_type].from_cbor(envelope["cborHex"])
    except Exception:  # pycardano raises assorted CBOR and value errors
        raise SigningKeyError(f"{key_file}: cborHex is not a CBOR-encoded key") from None
    if not isinstance(key.payload, bytes) or len(key.payload) != _PAYLOAD_BYTES[key_type]:
        size = _PAYLOAD_BYTES[key_type]
        raise SigningKeyError(f"{key_file}: a {key_type} key must be {size} bytes")
    return key
