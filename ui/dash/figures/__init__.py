"""Pure figure builders of the dashboard: data in, ``plotly.graph_objects.Figure`` out (no Dash, no Desk)."""
