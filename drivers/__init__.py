# SPDX-License-Identifier: Apache-2.0
"""Reader drivers (installed as ``loyaltysdk.drivers``); each loads lazily."""
