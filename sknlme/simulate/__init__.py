"""sknlme.simulate"""
