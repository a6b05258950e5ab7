# SPDX-License-Identifier: Apache-2.0
"""A real blank DESFire EV2 answering legacy Authenticate (0x0A) with the DES zero key.

From a reader trace posted on the NXP community forum ("PN7642 mifare
desfire example not work", community.nxp.com, thread 1890756): the card's
challenge, the reader's answer and the card's reply, all ending in status
00 (the failure in that thread came later). RndB is what the challenge
decrypts to under the zero key; the reader's answer then proves
rotate_left(RndB), and the reply is E(K, rotate_left(RndA)).
"""

from __future__ import annotations

BLANK_CARD_0A_TRACE = {
    "challenge": bytes.fromhex("3526872E8D7696FA"),
    "token": bytes.fromhex("EAB21A6B49D011C02824A26F703148DB"),
    "reply": bytes.fromhex("F8068C86FC27578B"),
    "rnd_b": bytes.fromhex("C7AE926AC738DFD1"),
}
