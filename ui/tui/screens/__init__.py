"""Modal screens of the trader's terminal: order ticket, confirmations, prompts."""
