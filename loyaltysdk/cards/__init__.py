# SPDX-License-Identifier: Apache-2.0
"""Card protocols (DESFire stored value, NTAG 424 tap-to-identify) on one transport."""
