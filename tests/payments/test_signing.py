"""The /provide_input signature: real .skey files in, CIP-08 verification by pycardano out."""

from __future__ import annotations

import hashlib
import json
import secrets
from pathlib import Path

import pytest
from nacl.signing import SigningKey as NaclSigningKey
from pycardano import HDWallet, Network, PaymentExtendedSigningKey
from pycardano.cip import cip8

from agentjobs.server.payments.signing import (
    CoseSigner,
    NoSigner,
    SigningKeyError,
    load_signer,
    provide_input_payload,
)

ANSWER = {"job_id": "job-1", "status_id": "status-7", "input_hash": "ab" * 32}


def skey_file(path: Path, key_type: str, payload: bytes) -> Path:
    """A key file as cardano-cli writes it: a CBOR byte string in a JSON envelope."""
    cbor_prefix = "5820" if len(payload) == 32 else "5880"
    path.write_text(
        json.dumps(
            {
                "type": key_type,
                "description": "Payment Signing Key",
                "cborHex": cbor_prefix + payload.hex(),
            }
        )
    )
    return path


def normal_key(tmp_path: Path, seed: bytes) -> Path:
    return skey_file(tmp_path / "payment.skey", "PaymentSigningKeyShelley_ed25519", seed)


def extended_key_payload() -> bytes:
    wallet = HDWallet.from_mnemonic(HDWallet.generate_mnemonic())
    child = wallet.derive_from_path("m/1852'/1815'/0'/0/0")
    payload: bytes = PaymentExtendedSigningKey.from_hdwallet(child).payload
    return payload


def test_a_signature_verifies_and_names_the_answer_and_the_key(tmp_path: Path) -> None:
    seed = secrets.token_bytes(32)
    signer = load_signer(normal_key(tmp_path, seed), "Preprod")
    signature = signer.sign_provide_input(**ANSWER)

    checked = cip8.verify(signature)
    assert checked["verified"] is True
    assert checked["message"] == provide_input_payload(**ANSWER)
    assert json.loads(checked["message"]) == ANSWER
    address = checked["signing_address"]
    assert address.network is Network.TESTNET
    # What a buyer compares with the published key: derived here without pycardano.
    vkey = bytes(NaclSigningKey(seed).verify_key)
    assert signer.verification_key == vkey.hex()
    assert signer.verification_key_hash == hashlib.blake2b(vkey, digest_size=28).hexdigest()
    assert address.payment_part.payload.hex() == signer.verification_key_hash


def test_an_extended_key_signs_for_its_plain_verification_key(tmp_path: Path) -> None:
    payload = extended_key_payload()
    path = skey_file(
        tmp_path / "payment.skey", "PaymentExtendedSigningKeyShelley_ed25519_bip32", payload
    )
    signer = load_signer(path, "Mainnet")
    checked = cip8.verify(signer.sign_provide_input(**ANSWER))
    assert checked["verified"] is True
    assert checked["signing_address"].network is Network.MAINNET
    assert signer.verification_key == payload[64:96].hex()


def test_the_same_answer_gets_the_same_signature(tmp_path: Path) -> None:
    # A replayed ProvideInput (same request_id) must answer exactly what it answered.
    signer = CoseSigner(normal_key(tmp_path, secrets.token_bytes(32)), "Preprod")
    assert signer.sign_provide_input(**ANSWER) == signer.sign_provide_input(**ANSWER)


def test_a_tampered_payload_or_signature_fails(tmp_path: Path) -> None:
    signer = load_signer(normal_key(tmp_path, secrets.token_bytes(32)), "Preprod")
    signature = signer.sign_provide_input(**ANSWER)
    signed_hash = ANSWER["input_hash"].encode().hex()
    assert signed_hash in signature
    forged_hash = ("cd" + ANSWER["input_hash"][2:]).encode().hex()
    assert cip8.verify(signature.replace(signed_hash, forged_hash))["verified"] is False
    last = signature[-2:]
    flipped = signature[:-2] + f"{int(last, 16) ^ 1:02x}"
    assert cip8.verify(flipped)["verified"] is False


def test_a_signature_by_another_key_is_caught_by_the_published_key(tmp_path: Path) -> None:
    ours = load_signer(normal_key(tmp_path, secrets.token_bytes(32)), "Preprod")
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    theirs = load_signer(normal_key(other_dir, secrets.token_bytes(32)), "Preprod")
    checked = cip8.verify(theirs.sign_provide_input(**ANSWER))
    # Valid COSE by *some* key: only comparing with the published key rejects it.
    assert checked["verified"] is True
    assert checked["signing_address"].payment_part.payload.hex() != ours.verification_key_hash


def test_without_a_key_the_signature_is_empty() -> None:
    signer = load_signer(None, "Preprod")
    assert isinstance(signer, NoSigner)
    assert signer.sign_provide_input(**ANSWER) == ""
    assert signer.verification_key == "" and signer.verification_key_hash == ""


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        ("not json", "not a cardano-cli key file"),
        ('{"type": "PaymentSigningKeyShelley_ed25519"}', "no cborHex"),
        ('{"type": "StakeSigningKeyShelley_ed25519", "cborHex": "5820' + "00" * 32 + '"}', "Stake"),
        ('{"type": "PaymentSigningKeyShelley_ed25519", "cborHex": "zz"}', "not a CBOR"),
        ('{"type": "PaymentSigningKeyShelley_ed25519", "cborHex": "5810' + "11" * 16 + '"}', "32"),
    ],
)
def test_unusable_key_files_are_refused(tmp_path: Path, content: str, complaint: str) -> None:
    path = tmp_path / "payment.skey"
    path.write_text(content)
    with pytest.raises(SigningKeyError, match=complaint):
        load_signer(path, "Preprod")


def test_an_extended_key_with_a_foreign_public_half_is_refused(tmp_path: Path) -> None:
    payload = bytearray(extended_key_payload())
    payload[64:96] = bytes(NaclSigningKey(secrets.token_bytes(32)).verify_key)
    path = skey_file(
        tmp_path / "payment.skey", "PaymentExtendedSigningKeyShelley_ed25519_bip32", bytes(payload)
    )
    with pytest.raises(SigningKeyError, match="does not match") as refused:
        load_signer(path, "Preprod")
    assert payload[:32].hex() not in str(refused.value)


def test_a_missing_key_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SigningKeyError, match=r"payment\.skey"):
        load_signer(tmp_path / "payment.skey", "Preprod")
