"""External venues (Deribit, OKX, Bybit) through ccxt's unified API and ccxt.pro websockets."""

from connectors.ccxt_venue.venue import CcxtVenue
from connectors.ccxt_venue.venues import BYBIT, DERIBIT, OKX, VenueTable, table

__all__ = ["BYBIT", "DERIBIT", "OKX", "CcxtVenue", "VenueTable", "table"]
