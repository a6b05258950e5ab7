# SPDX-License-Identifier: Apache-2.0
"""Virtual cards, readers, tills and networks (installed as ``loyaltysdk.simulators``)."""
