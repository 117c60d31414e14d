"""deribit_api package."""
