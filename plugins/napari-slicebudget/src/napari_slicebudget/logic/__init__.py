"""Qt-free logic of the plugin's widgets: plain functions and small classes, tested without a viewer."""
