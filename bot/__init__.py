"""liqbot: liquidation, funding and open-interest alerts for crypto derivatives traders."""
