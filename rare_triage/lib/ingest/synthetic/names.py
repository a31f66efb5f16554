"""Small lists of common Spanish names and places to build fake but realistic-looking identities (no Faker)."""

from typing import Final

GIVEN_NAMES_F: Final = (
    "María", "Carmen", "Ana", "Isabel", "Laura", "Lucía", "Cristina", "Marta", "Elena", "Pilar",
    "Paula", "Sara", "Raquel", "Rosa", "Julia", "Sofía", "Beatriz", "Silvia", "Irene", "Alba",
    "Nuria", "Patricia", "Teresa", "Andrea", "Claudia", "Mónica", "Rocío", "Noelia", "Inés", "Montserrat",
)  # fmt: skip
GIVEN_NAMES_M: Final = (
    "Antonio", "José", "Manuel", "Francisco", "David", "Juan", "Javier", "Daniel", "Carlos", "Jesús",
    "Alejandro", "Miguel", "Rafael", "Pablo", "Pedro", "Ángel", "Sergio", "Fernando", "Jorge", "Luis",
    "Alberto", "Álvaro", "Adrián", "Diego", "Raúl", "Iván", "Rubén", "Óscar", "Hugo", "Marc",
)  # fmt: skip
FAMILY_NAMES: Final = (
    "García", "Rodríguez", "González", "Fernández", "López", "Martínez", "Sánchez", "Pérez", "Gómez", "Martín",
    "Jiménez", "Ruiz", "Hernández", "Díaz", "Moreno", "Muñoz", "Álvarez", "Romero", "Alonso", "Gutiérrez",
    "Navarro", "Torres", "Domínguez", "Vázquez", "Ramos", "Gil", "Ramírez", "Serrano", "Blanco", "Molina",
    "Morales", "Suárez", "Ortega", "Delgado", "Castro", "Ortiz", "Rubio", "Marín", "Sanz", "Núñez",
    "Iglesias", "Medina", "Garrido", "Cortés", "Castillo", "Santos", "Lozano", "Guerrero", "Cano", "Prieto",
)  # fmt: skip
STREETS: Final = (
    "Calle Mayor", "Calle Real", "Avenida de la Constitución", "Calle del Sol", "Plaza de España",
    "Calle Nueva", "Avenida de Andalucía", "Calle San Juan", "Calle de la Iglesia", "Paseo del Prado",
    "Calle Alcalá", "Calle del Carmen", "Avenida de América", "Calle de Toledo", "Ronda de Valencia",
    "Calle Goya", "Calle Cervantes", "Avenida Diagonal", "Rúa do Franco", "Calle de la Paz",
)  # fmt: skip
EMAIL_DOMAINS: Final = ("example.com", "example.org", "example.net", "correo.example", "mail.example")

# region -> (city, 3-digit ZIP area, relative population); some areas are small on purpose (k-anonymity).
REGIONS: Final[dict[str, tuple[tuple[str, str, float], ...]]] = {
    "Madrid": (("Madrid", "280", 6.0), ("Alcalá de Henares", "288", 0.8), ("Móstoles", "289", 0.7),
               ("Aranjuez", "283", 0.15), ("Buitrago del Lozoya", "287", 0.02)),
    "Cataluña": (("Barcelona", "080", 5.0), ("L'Hospitalet de Llobregat", "089", 0.9), ("Girona", "170", 0.6),
                 ("Tarragona", "430", 0.6), ("La Seu d'Urgell", "257", 0.03)),
    "Andalucía": (("Sevilla", "410", 2.5), ("Málaga", "290", 2.2), ("Córdoba", "140", 1.2),
                  ("Granada", "180", 1.0), ("Almería", "040", 0.6), ("Cazorla", "234", 0.02)),
    "Galicia": (("A Coruña", "150", 1.0), ("Vigo", "362", 1.1), ("Santiago de Compostela", "157", 0.4),
                ("Lugo", "270", 0.4), ("O Barco de Valdeorras", "323", 0.02)),
}  # fmt: skip
REGION_WEIGHTS: Final[dict[str, float]] = {"Madrid": 0.32, "Cataluña": 0.3, "Andalucía": 0.25, "Galicia": 0.13}
