"""The embedded exchange: order books and matching, accounts and ledger, margin, liquidation, oracle, settlement."""
