"""The trader's terminal: a Textual app over the Desk (``desk tui``).

    from ui.tui.app import DeskTui
    DeskTui(desk).run()              # desk: app.desk.Desk, or a factory returning one

Modules: ``app`` (the App and its palette commands), ``widgets`` (chain, positions, margin, hedger, log),
``screens`` (order ticket, dialogs), ``ticket_model`` (form → OrderRequest, IV pricing), ``feed`` (per-expiry
chains), ``keymap`` (bindings with action ids), ``format`` (numbers and expiries as text), ``tui.tcss``.
"""
