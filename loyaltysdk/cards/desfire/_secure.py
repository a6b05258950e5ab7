# SPDX-License-Identifier: Apache-2.0
"""DESFire EV2 and EV1 secure messaging and the authentication handshakes, as pure objects.

Nothing here touches a transport: an authentication is a sequence of steps
(make the first command, answer the card's challenge, check its reply), and
a session wraps a command and unwraps a response. The client drives them over
a transport; the virtual card uses the card-side halves; the tests feed them
the numbers of NXP AN12196 and AN12343 alone. Splitting the handshake into
steps leaves room for a SAM to do the key operations later.

Wire format (AN12196 sections 5.3 and 5.4): command MACs cover
``Cmd || CmdCtr || TI || header || data``, response MACs
``RC || CmdCtr+1 || TI || data``; both are CMACs under KSesAuthMAC cut to
their odd bytes. Full mode encrypts data (ISO/IEC 9797-1 method 2 padding)
with AES-CBC under KSesAuthENC, the IV being the encryption of
``A5 5A || TI || CmdCtr || 0*8`` for commands and ``5A A5 || ...`` for
responses.

EV1 after AuthenticateAES (`Ev1Session`; libfreefare's mifare_desfire_crypto.c
and the EV1 communication examples published with sotechcllc/RFDoorLock show
the same rules) keeps one 16-byte IV for the whole session, zero at the start.
Every command and every answer moves it: a CMAC started from the IV
instead of from zero, over ``Cmd || header || data`` for a command and
``data || status`` for an answer, becomes the next IV. A command carries the
first 8 bytes of its CMAC only when it sends file data in MAC mode (Credit,
Debit, WriteRecord...); every successful answer carries them unless it is
enciphered. Full mode enciphers ``data || CRC32`` with zero padding in
AES-CBC from the IV, whose last block is the next IV; the CRC32 covers
``Cmd || header || data`` for a command and ``data || status`` for an answer.
"""

from __future__ import annotations

import enum
import os

import attrs

from ..._errors import CardAuthenticationFailed, CardIntegrityError, MalformedResponse
from ..crypto import (
    BLOCK,
    ZERO_IV,
    aes_cmac,
    cbc_decrypt,
    cbc_encrypt,
    desfire_crc32,
    encrypt_block,
    equal,
    ev1_session_key,
    ev2_session_keys,
    pad_m2,
    rotate_left,
    truncate_mac,
    unpad_m2,
)

MAC_LENGTH = 8
_MAX_COUNTER = 0xFFFF

AUTHENTICATE_EV2_FIRST = 0x71
AUTHENTICATE_EV2_NON_FIRST = 0x77
AUTHENTICATE_AES = 0xAA
#: ChangeKey, whose EV1 cryptogram puts the new key's CRC32 after the command's.
_CHANGE_KEY = 0xC4
_CRC_LENGTH = 4


class CommMode(enum.IntEnum):
    """How a command's or response's data travels (the file's communication setting)."""

    PLAIN = 0
    MAC = 1
    FULL = 3


def _random16() -> bytes:
    return os.urandom(16)


@attrs.define
class Ev2Session:
    """An authenticated EV2 session: keys, transaction identifier and command counter.

    The same object serves both ends: the reader side calls `wrap` and
    `unwrap`, the card side `open` and `seal`. The counter moves once per
    command-response pair, in `unwrap` or `seal`.

    Attributes:
        key_no: the key the session was authenticated with.
        enc_key: KSesAuthENC.
        mac_key: KSesAuthMAC.
        ti: the 4-byte transaction identifier the card chose.
        counter: CmdCtr, the number of commands answered since AuthenticateEV2First.
    """

    key_no: int
    enc_key: bytes = attrs.field(repr=False)
    mac_key: bytes = attrs.field(repr=False)
    ti: bytes
    counter: int = 0

    def _counter_bytes(self, counter: int) -> bytes:
        return counter.to_bytes(2, "little")

    def _iv(self, label: bytes, counter: int) -> bytes:
        return encrypt_block(
            self.enc_key, label + self.ti + self._counter_bytes(counter) + bytes(8)
        )

    def command_mac(self, command: int, payload: bytes) -> bytes:
        """The 8-byte MAC of a command at the current counter."""
        message = bytes([command]) + self._counter_bytes(self.counter) + self.ti + payload
        return truncate_mac(aes_cmac(self.mac_key, message))

    def response_mac(self, status: int, data: bytes) -> bytes:
        """The 8-byte MAC of a response to the current command (counter + 1)."""
        counter = self._counter_bytes((self.counter + 1) & _MAX_COUNTER)
        return truncate_mac(aes_cmac(self.mac_key, bytes([status]) + counter + self.ti + data))

    # -- reader side -------------------------------------------------------

    def wrap(self, command: int, header: bytes, data: bytes, mode: CommMode) -> bytes:
        """Protect a command; returns what follows the command byte on the wire.

        Args:
            command: the command byte (0xDC Debit, ...).
            header: parameters sent in clear even in full mode (file number...).
            data: the command data, encrypted in full mode.
            mode: the communication mode of this command.

        Raises:
            CardIntegrityError: the counter is exhausted; authenticate again.
        """
        if self.counter >= _MAX_COUNTER:
            raise CardIntegrityError("command counter exhausted: authenticate again")
        if mode is CommMode.PLAIN:
            return header + data
        if mode is CommMode.FULL and data:
            data = cbc_encrypt(self.enc_key, self._iv(b"\xa5\x5a", self.counter), pad_m2(data))
        return header + data + self.command_mac(command, header + data)

    def unwrap(self, status: int, body: bytes, mode: CommMode) -> bytes:
        """Check a successful response and return its plain data; moves the counter.

        Args:
            status: the status byte (0x00).
            body: the response data, all frames joined, MAC included.
            mode: the communication mode of this response.

        Raises:
            CardIntegrityError: the MAC or padding is wrong.
            MalformedResponse: the response is too short for its MAC, or
                encrypted data is not whole blocks.
        """
        try:
            if mode is CommMode.PLAIN:
                return body
            if len(body) < MAC_LENGTH:
                raise MalformedResponse(f"response too short for its MAC: {body.hex()}")
            data, mac = body[:-MAC_LENGTH], body[-MAC_LENGTH:]
            if not equal(mac, self.response_mac(status, data)):
                raise CardIntegrityError("response MAC does not match: response rejected")
            if mode is CommMode.FULL and data:
                if len(data) % 16:
                    raise MalformedResponse("encrypted response is not whole AES blocks")
                iv = self._iv(b"\x5a\xa5", (self.counter + 1) & _MAX_COUNTER)
                try:
                    return unpad_m2(cbc_decrypt(self.enc_key, iv, data))
                except ValueError as error:
                    raise CardIntegrityError(f"response padding is wrong: {error}") from None
            return data
        finally:
            self.counter += 1

    # -- card side ---------------------------------------------------------

    def open(
        self, command: int, body: bytes, header_length: int, mode: CommMode
    ) -> tuple[bytes, bytes]:
        """Check a command as the card does; returns (header, plain data).

        Raises:
            CardIntegrityError: wrong MAC or padding (the card answers 0x1E).
            MalformedResponse: too short for its header and MAC.
        """
        if mode is CommMode.PLAIN:
            return body[:header_length], body[header_length:]
        if len(body) < header_length + MAC_LENGTH:
            raise MalformedResponse("command too short for its header and MAC")
        payload, mac = body[:-MAC_LENGTH], body[-MAC_LENGTH:]
        if not equal(mac, self.command_mac(command, payload)):
            raise CardIntegrityError("command MAC does not match")
        header, data = payload[:header_length], payload[header_length:]
        if mode is CommMode.FULL and data:
            if len(data) % 16:
                raise CardIntegrityError("encrypted command is not whole AES blocks")
            try:
                data = unpad_m2(
                    cbc_decrypt(self.enc_key, self._iv(b"\xa5\x5a", self.counter), data)
                )
            except ValueError as error:
                raise CardIntegrityError(str(error)) from None
        return header, data

    def seal(self, status: int, data: bytes, mode: CommMode) -> bytes:
        """Protect a response as the card does; moves the counter."""
        try:
            if mode is CommMode.PLAIN:
                return data
            if mode is CommMode.FULL and data:
                iv = self._iv(b"\x5a\xa5", (self.counter + 1) & _MAX_COUNTER)
                data = cbc_encrypt(self.enc_key, iv, pad_m2(data))
            return data + self.response_mac(status, data)
        finally:
            self.counter += 1


def _zero_padded(data: bytes) -> bytes:
    return data + bytes(-len(data) % BLOCK)


def _split_crc(plain: bytes, prefix: bytes, suffix: bytes) -> bytes | None:
    """The data of a deciphered ``data || CRC32(prefix || data || suffix) || 00..``.

    The data length is not sent, so every place the CRC can sit (with less
    than a block of zero padding after it) is tried, shortest data first:
    longest first would be wrong, as this CRC (no final XOR) of a message
    followed by its own CRC is zero, and stays zero over zero padding, so
    the last four bytes of every such plaintext "match". A wrong key or a
    flipped bit matches nowhere but once in 2**32.
    """
    last = len(plain) - _CRC_LENGTH
    for end in range(max(0, last - BLOCK + 1), last + 1):
        if any(plain[end + _CRC_LENGTH :]):
            continue
        if equal(desfire_crc32(prefix + plain[:end] + suffix), plain[end : end + _CRC_LENGTH]):
            return plain[:end]
    return None


@attrs.define
class Ev1Session:
    """An authenticated EV1 AES session: the session key and the IV that chains it.

    Same shape as `Ev2Session`: the reader side calls `wrap` and `unwrap`,
    the card side `open` and `seal`, each moving the IV as the card does.
    A failed check leaves the IV wherever it got to; both ends drop the
    session then, so it is never used again.

    Attributes:
        key_no: the key the session was authenticated with.
        key: the session key, RndA[0..3] || RndB[0..3] || RndA[12..15] || RndB[12..15].
        iv: the current IV, zero right after AuthenticateAES.
    """

    key_no: int
    key: bytes = attrs.field(repr=False)
    iv: bytes = attrs.field(default=ZERO_IV, repr=False)

    def cmac(self, message: bytes) -> bytes:
        """The 16-byte CMAC of `message` chained from the IV, which it becomes.

        A CMAC started from IV V equals the standard CMAC of one block
        D(K, V) followed by the message (the first block's encryption is V),
        as long as the message is not empty; DESFire's never are: a command
        has its code, an answer its status.
        """
        if not message:
            raise ValueError("EV1 MACs cover at least the command code or the status")
        self.iv = aes_cmac(self.key, cbc_decrypt(self.key, ZERO_IV, self.iv) + message)
        return self.iv

    def _encipher(self, plain: bytes) -> bytes:
        sealed = cbc_encrypt(self.key, self.iv, _zero_padded(plain))
        self.iv = sealed[-BLOCK:]
        return sealed

    def _decipher(self, sealed: bytes) -> bytes:
        if not sealed or len(sealed) % BLOCK:
            raise CardIntegrityError("enciphered data is not whole AES blocks")
        plain = cbc_decrypt(self.key, self.iv, sealed)
        self.iv = sealed[-BLOCK:]
        return plain

    def _command_plaintext(self, command: int, header: bytes, data: bytes) -> bytes:
        prefix = bytes([command]) + header
        if command == _CHANGE_KEY and len(data) == 21:
            # Another key: XORed key || version, their CRC32 (over the command
            # too), then the new key's CRC32, as the EV1 datasheet orders them.
            return data[:17] + desfire_crc32(prefix + data[:17]) + data[17:]
        return data + desfire_crc32(prefix + data)

    def _command_data(self, command: int, header: bytes, plain: bytes) -> bytes:
        prefix = bytes([command]) + header
        data = _split_crc(plain, prefix, b"")
        if data is not None:
            return data
        key_crc_follows = command == _CHANGE_KEY and not any(plain[25:])
        if key_crc_follows and equal(desfire_crc32(prefix + plain[:17]), plain[17:21]):
            return plain[:17] + plain[21:25]  # what the EV2 layout hands the card
        raise CardIntegrityError("enciphered command fails its CRC32")

    # -- reader side -------------------------------------------------------

    def wrap(self, command: int, header: bytes, data: bytes, mode: CommMode) -> bytes:
        """Protect a command; returns what follows the command byte on the wire.

        Args:
            command: the command byte (0xDC Debit, ...).
            header: parameters sent in clear even in full mode (file number...).
            data: the command data, enciphered in full mode.
            mode: the communication mode of this command.
        """
        if mode is CommMode.FULL and data:
            return header + self._encipher(self._command_plaintext(command, header, data))
        mac = self.cmac(bytes([command]) + header + data)
        if mode is CommMode.MAC and data:
            return header + data + mac[:MAC_LENGTH]
        return header + data

    def unwrap(self, status: int, body: bytes, mode: CommMode) -> bytes:
        """Check a successful answer and return its plain data; moves the IV.

        Args:
            status: the status byte (0x00).
            body: the answer data, all frames joined.
            mode: the communication mode of the command it answers; a
                full-mode answer without data (to Credit, say) is MACed.

        Raises:
            CardIntegrityError: the CMAC or CRC32 is wrong.
            MalformedResponse: the answer is too short for its CMAC, or
                enciphered data is not whole blocks.
        """
        if mode is CommMode.FULL and len(body) != MAC_LENGTH:
            if not body or len(body) % BLOCK:
                raise MalformedResponse(f"enciphered answer is not whole AES blocks: {body.hex()}")
            data = _split_crc(self._decipher(body), b"", bytes([status]))
            if data is None:
                raise CardIntegrityError("enciphered answer fails its CRC32: response rejected")
            return data
        if len(body) < MAC_LENGTH:
            raise MalformedResponse(f"response too short for its CMAC: {body.hex()}")
        data, mac = body[:-MAC_LENGTH], body[-MAC_LENGTH:]
        if not equal(mac, self.cmac(data + bytes([status]))[:MAC_LENGTH]):
            raise CardIntegrityError("response CMAC does not match: response rejected")
        return data

    # -- card side ---------------------------------------------------------

    def open(
        self, command: int, body: bytes, header_length: int, mode: CommMode
    ) -> tuple[bytes, bytes]:
        """Check a command as the card does; returns (header, plain data).

        Raises:
            CardIntegrityError: wrong CMAC or CRC32 (the card answers 0x1E).
            MalformedResponse: too short for its header.
        """
        if len(body) < header_length:
            raise MalformedResponse("command too short for its header")
        header, data = body[:header_length], body[header_length:]
        if mode is CommMode.FULL and data:
            return header, self._command_data(command, header, self._decipher(data))
        if mode is CommMode.MAC and data:
            if len(data) <= MAC_LENGTH:
                raise CardIntegrityError("command too short for its data and CMAC")
            data, mac = data[:-MAC_LENGTH], data[-MAC_LENGTH:]
            if not equal(mac, self.cmac(bytes([command]) + header + data)[:MAC_LENGTH]):
                raise CardIntegrityError("command CMAC does not match")
            return header, data
        self.cmac(bytes([command]) + body)
        return header, data

    def seal(self, status: int, data: bytes, mode: CommMode) -> bytes:
        """Protect an answer as the card does; moves the IV."""
        if mode is CommMode.FULL and data:
            return self._encipher(data + desfire_crc32(data + bytes([status])))
        return data + self.cmac(data + bytes([status]))[:MAC_LENGTH]


class Ev2Authentication:
    """The reader's side of AuthenticateEV2First or AuthenticateEV2NonFirst, step by step.

    Example (the client does this over a transport)::

        auth = Ev2Authentication(1, key)
        command, data = auth.command()            # 0x71, key number and LenCap
        answer = auth.respond(card_challenge)     # E(K, RndA || RndB'), sent with 0xAF
        session = auth.finish(card_reply)         # checks RndA', derives the keys
    """

    def __init__(
        self,
        key_no: int,
        key: bytes,
        *,
        first: bool = True,
        rnd_a: bytes | None = None,
    ) -> None:
        if not 0 <= key_no <= 0x0D:
            raise ValueError(f"key number out of range: {key_no}")
        self.key_no = key_no
        self.first = first
        self._key = bytes(key)
        self._rnd_a = rnd_a if rnd_a is not None else _random16()
        self._rnd_b: bytes | None = None

    def command(self) -> tuple[int, bytes]:
        """The first command: (command byte, data)."""
        if self.first:
            return AUTHENTICATE_EV2_FIRST, bytes([self.key_no, 0x00])
        return AUTHENTICATE_EV2_NON_FIRST, bytes([self.key_no])

    def respond(self, challenge: bytes) -> bytes:
        """Answer the card's encrypted RndB with E(K, RndA || RndB rotated left).

        Raises:
            MalformedResponse: the challenge is not one AES block.
        """
        if len(challenge) != 16:
            raise MalformedResponse(f"authentication challenge is {len(challenge)} bytes, not 16")
        self._rnd_b = cbc_decrypt(self._key, ZERO_IV, challenge)
        return cbc_encrypt(self._key, ZERO_IV, self._rnd_a + rotate_left(self._rnd_b))

    def finish(self, reply: bytes, previous: Ev2Session | None = None) -> Ev2Session:
        """Check the card's proof and start (or, non-first, continue) the session.

        Args:
            reply: the card's encrypted reply: TI || RndA' || PDcap2 || PCDcap2
                after First (32 bytes), RndA' after NonFirst (16 bytes).
            previous: the session a NonFirst authentication continues.

        Raises:
            CardAuthenticationFailed: the card did not prove the key.
            MalformedResponse: the reply has the wrong length.
        """
        if self._rnd_b is None:
            raise CardAuthenticationFailed("finish() before respond()")
        expected = 32 if self.first else 16
        if len(reply) != expected:
            raise MalformedResponse(f"authentication reply is {len(reply)} bytes, not {expected}")
        plain = cbc_decrypt(self._key, ZERO_IV, reply)
        ti, rnd_a_rotated = (plain[:4], plain[4:20]) if self.first else (b"", plain)
        if not equal(rnd_a_rotated, rotate_left(self._rnd_a)):
            raise CardAuthenticationFailed("the card did not prove the key (RndA' differs)")
        enc, mac = ev2_session_keys(self._key, self._rnd_a, self._rnd_b)
        if self.first:
            return Ev2Session(self.key_no, enc, mac, ti, 0)
        if previous is None:
            raise CardAuthenticationFailed("AuthenticateEV2NonFirst needs the running session")
        return Ev2Session(self.key_no, enc, mac, previous.ti, previous.counter)


class Ev2CardAuthentication:
    """The card's side of the EV2 handshake (used by the virtual card)."""

    def __init__(
        self,
        key_no: int,
        key: bytes,
        *,
        first: bool = True,
        rnd_b: bytes | None = None,
        ti: bytes | None = None,
    ) -> None:
        self.key_no = key_no
        self.first = first
        self._key = bytes(key)
        self._rnd_b = rnd_b if rnd_b is not None else _random16()
        self._ti = ti if ti is not None else os.urandom(4)

    def challenge(self) -> bytes:
        """E(K, RndB), the answer to the first command."""
        return cbc_encrypt(self._key, ZERO_IV, self._rnd_b)

    def verify(self, answer: bytes, previous: Ev2Session | None = None) -> tuple[bytes, Ev2Session]:
        """Check the reader's E(K, RndA || RndB'); return the reply and the new session.

        Raises:
            CardAuthenticationFailed: the reader does not hold the key.
        """
        if len(answer) != 32:
            raise CardAuthenticationFailed("authentication answer is not 32 bytes")
        plain = cbc_decrypt(self._key, ZERO_IV, answer)
        rnd_a, rnd_b_rotated = plain[:16], plain[16:]
        if not equal(rnd_b_rotated, rotate_left(self._rnd_b)):
            raise CardAuthenticationFailed("the reader did not prove the key")
        enc, mac = ev2_session_keys(self._key, rnd_a, self._rnd_b)
        if self.first or previous is None:
            reply = cbc_encrypt(self._key, ZERO_IV, self._ti + rotate_left(rnd_a) + bytes(12))
            return reply, Ev2Session(self.key_no, enc, mac, self._ti, 0)
        reply = cbc_encrypt(self._key, ZERO_IV, rotate_left(rnd_a))
        return reply, Ev2Session(self.key_no, enc, mac, previous.ti, previous.counter)


class Ev1Authentication:
    """The reader's side of the EV1 AuthenticateAES (0xAA) handshake, for older cards.

    EV1 chains the CBC IV through the handshake: the reader encrypts its
    answer with the card's challenge as IV, and the card encrypts its reply
    with the last block of that answer as IV.
    """

    def __init__(self, key_no: int, key: bytes, *, rnd_a: bytes | None = None) -> None:
        self.key_no = key_no
        self._key = bytes(key)
        self._rnd_a = rnd_a if rnd_a is not None else _random16()
        self._rnd_b: bytes | None = None
        self._last_block = ZERO_IV

    def command(self) -> tuple[int, bytes]:
        """The first command: (0xAA, key number)."""
        return AUTHENTICATE_AES, bytes([self.key_no])

    def respond(self, challenge: bytes) -> bytes:
        """Answer E(K, RndB) with E(K, RndA || RndB'), chained on the challenge."""
        if len(challenge) != 16:
            raise MalformedResponse(f"authentication challenge is {len(challenge)} bytes, not 16")
        self._rnd_b = cbc_decrypt(self._key, ZERO_IV, challenge)
        answer = cbc_encrypt(self._key, challenge, self._rnd_a + rotate_left(self._rnd_b))
        self._last_block = answer[-16:]
        return answer

    def finish(self, reply: bytes) -> Ev1Session:
        """Check E(K, RndA') and start the session (IV zero).

        Raises:
            CardAuthenticationFailed: the card did not prove the key.
        """
        if self._rnd_b is None:
            raise CardAuthenticationFailed("finish() before respond()")
        if len(reply) != 16:
            raise MalformedResponse(f"authentication reply is {len(reply)} bytes, not 16")
        if not equal(cbc_decrypt(self._key, self._last_block, reply), rotate_left(self._rnd_a)):
            raise CardAuthenticationFailed("the card did not prove the key (RndA' differs)")
        return Ev1Session(self.key_no, ev1_session_key(self._rnd_a, self._rnd_b))


class Ev1CardAuthentication:
    """The card's side of EV1 AuthenticateAES (used by the virtual card)."""

    def __init__(self, key_no: int, key: bytes, *, rnd_b: bytes | None = None) -> None:
        self.key_no = key_no
        self._key = bytes(key)
        self._rnd_b = rnd_b if rnd_b is not None else _random16()
        self._challenge = cbc_encrypt(self._key, ZERO_IV, self._rnd_b)

    def challenge(self) -> bytes:
        """E(K, RndB) with a zero IV."""
        return self._challenge

    def verify(self, answer: bytes) -> tuple[bytes, Ev1Session]:
        """Check the reader's answer; return (reply, the new session)."""
        if len(answer) != 32:
            raise CardAuthenticationFailed("authentication answer is not 32 bytes")
        plain = cbc_decrypt(self._key, self._challenge, answer)
        rnd_a = plain[:16]
        if not equal(plain[16:], rotate_left(self._rnd_b)):
            raise CardAuthenticationFailed("the reader did not prove the key")
        reply = cbc_encrypt(self._key, answer[-16:], rotate_left(rnd_a))
        return reply, Ev1Session(self.key_no, ev1_session_key(rnd_a, self._rnd_b))
